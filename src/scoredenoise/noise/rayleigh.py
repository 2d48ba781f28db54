"""Multiplicative Rayleigh noise, biased upwards (Table 1, row 9)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ._base import NoiseModel, param, register, support_error
from ._iterate import fixed_point


def rayleigh_sigma_param():
    return param(0.3, unit="dimensionless", low=0.0, low_open=True,
                 description="scale of the Rayleigh multiplier eta in y = (eta + 1) x")


@register
@dataclass(frozen=True)
class Rayleigh(NoiseModel):
    """y = (eta + 1) x, eta ~ Rayleigh(sigma): always y >= x, mean bias sigma sqrt(pi/2) x.

    ``solve`` runs the paper's Algorithm 3 from x = y until converged: b = sigma^2 s x,
    t = (-b + sqrt(b^2 + 4 sigma^2)) / 2, x = y / (t + 1). Each step keeps 0 < x < y. The map
    is a contraction, so the iteration converges, where ``sigma^2 |s| y < 1`` (a sufficient
    condition: |dx/dx'| <= y sigma^2 |s| |dt/db| / (1 + t)^2 and |dt/db| < 1). Where y <= 0
    (possible only after A^-1 or the mixture step) there is no positive root and x = 0.
    """

    name = "rayleigh"
    table1_row = 9
    formula = "y = (1 + Rayleigh(sigma)) x"
    summary = "multiplicative, always-positive (biased) noise"
    solver = "fixed point, Algorithm 3; converges where sigma^2 |s| y < 1"
    no_root = "where y <= 0: x = 0"
    support = "y > 0"
    reference = "Xie et al. 2023, Eq. 14-16, Algorithm 3"

    sigma: float = rayleigh_sigma_param()

    estimable = ("sigma",)

    @property
    def mean_gain(self) -> float:
        return 1.0 + self.sigma * math.sqrt(math.pi / 2)

    def noise_level(self, mean):
        # mean = (1 + sigma sqrt(pi/2)) x, variance = sigma^2 (4 - pi)/2 x^2
        x = np.asarray(mean) / (1.0 + self.sigma * math.sqrt(math.pi / 2))
        return self.sigma ** 2 * (4 - math.pi) / 2 * np.square(x)
    def rescaled(self, k):
        return self

    def _check_x(self, x):
        if bool((x < 0).any()):
            support_error(self.name, "a non-negative clean image", x, x < 0,
                          "Rayleigh noise multiplies a non-negative intensity")

    def _check_y(self, y):
        if bool((y <= 0).any()):
            support_error(self.name, "> 0 (Rayleigh noise is multiplicative and positive)", y,
                          y <= 0, "remove the background offset, or use 'rayleigh+gaussian'")

    def _sample(self, x, rng):
        return (rng.rayleigh(self.sigma, size=x.shape) + 1.0) * x

    def _log_prob(self, x, y):
        # log p = log(y - x) - log(x^2 sigma^2) - (y - x)^2 / (2 x^2 sigma^2), y > x
        d = y - x
        valid = d > 0
        d_safe = torch.where(valid, d, torch.ones_like(d))
        v2 = (x * self.sigma) ** 2
        val = torch.log(d_safe) - torch.log(v2) - d_safe ** 2 / (2 * v2)
        return torch.where(valid, val, torch.full_like(val, -math.inf))

    def _score(self, x, y):
        d = y - x
        return 1 / d - d / (self.sigma ** 2 * x ** 2)

    def _solve(self, y, s):
        sig2 = self.sigma ** 2

        def step(x):
            b = sig2 * s * x
            root = torch.sqrt(b * b + 4 * sig2)
            # t = (-b + root) / 2, in the form without cancellation for either sign of b
            t = torch.where(b >= 0, 2 * sig2 / (b + root), 0.5 * (root - b))
            return y / (t + 1)

        x, _ = fixed_point(step, y, 0.0)
        return torch.where(y > 0, x, torch.zeros_like(x))
