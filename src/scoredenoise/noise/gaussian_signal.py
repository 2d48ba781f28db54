"""Signal-dependent Gaussian noise, std a*x + b (Table 1, row 3)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ._base import NoiseModel, param, register
from ._iterate import fixed_point


def _signal_params():
    return (
        param(0.98, unit="dimensionless", low=0.0,
              description="slope of the noise standard deviation with the signal"),
        param(25.0, unit="data units", low=0.0, low_open=True,
              description="noise standard deviation at zero signal"),
        param(0.0, unit="data units", low=0.0,
              description="standard deviation of additional white noise"),
    )


@register
@dataclass(frozen=True)
class GaussianSignal(NoiseModel):
    """y = x + eps, eps ~ N(0, diag(a x + b)^2 + white_sigma^2).

    ``white_sigma`` (default 0, Table 1 row 3) adds independent white noise, e.g. the smoothing
    a score model was trained with.

    ``solve`` runs the paper's Algorithm 2, x <- y + (a x + b)^2 s(y), from x = y until every
    pixel has converged. The map is a contraction, and the iteration converges, where
    ``|2 a (a x + b) s| < 1`` around the solution. Pixels that do not converge get the exact
    root of the quadratic ``s ((a x + b)^2 + w^2) - x + y = 0`` nearest to y, and x = y where
    that has no real root.

    Accuracy of the method itself: the solve replaces the posterior mean by the x at which
    the likelihood score equals the data's score. That is exact for a constant variance and
    good while the standard deviation changes little across the posterior's width; with
    the exact score on Set12 (0-255, ``benchmarks/oracle.py``) it is within 0.2 dB of the
    posterior mean for a <= 0.1 (b = 25), 5 dB below at a = 0.3, and useless at the paper's
    literal a = 0.98 (std up to 275 on 0-255 data: 8.8 dB against 24.2 for the posterior
    mean). For such noise train a direct denoiser (``objective="neighbor2neighbor"``).
    """

    name = "gaussian-signal"
    table1_row = 3
    formula = "y = x + N(0, (a x + b)^2 + white_sigma^2)"
    summary = "Gaussian noise whose standard deviation grows linearly with the signal"
    solver = ("fixed point, Algorithm 2: x <- y + (a x + b)^2 s(y), converges where "
              "|2 a (a x + b) s| < 1")
    no_root = ("where the quadratic s ((a x + b)^2 + w^2) - x + y = 0 has no real root: x = y; "
               "pixels where the iteration does not converge take its exact root")
    reference = "Xie et al. 2023, Eq. 4-5, Algorithm 2"

    a: float = _signal_params()[0]
    b: float = _signal_params()[1]
    white_sigma: float = _signal_params()[2]

    estimable = ("a", "b")

    def noise_level(self, mean):
        return np.square(self.a * np.asarray(mean) + self.b) + self.white_sigma ** 2
    def rescaled(self, k):
        return self.replace(b=self.b * k, white_sigma=self.white_sigma * k)

    def plus_gaussian(self, sigma):
        return self.replace(white_sigma=math.hypot(self.white_sigma, sigma))

    def _var(self, x):
        return (self.a * x + self.b) ** 2 + self.white_sigma ** 2

    def _sample(self, x, rng):
        return x + np.sqrt(self._var(x)) * rng.normal(size=x.shape)

    def _log_prob(self, x, y):
        var = self._var(x)
        return -((y - x) ** 2) / (2 * var) - 0.5 * torch.log(var)

    def _score(self, x, y):
        return -(y - x) / self._var(x)

    def _solve(self, y, s):
        a, b, w2 = self.a, self.b, self.white_sigma ** 2
        x, ok = fixed_point(lambda x: y + self._var(x) * s, y, self.b)
        for _ in range(2):  # Newton polish: the fixed point converges only linearly
            h = y + self._var(x) * s - x
            dh = 2 * a * (a * x + b) * s - 1
            x = torch.where(ok & (dh != 0), x - h / torch.where(dh != 0, dh, 1.0), x)
        if bool(ok.all()):
            return x
        # exact root of s a^2 x^2 + (2 a b s - 1) x + ((b^2 + w^2) s + y) = 0 closest to y,
        # written in the form that is stable as s -> 0
        c = (b * b + w2) * s + y
        disc = (1 - 2 * a * b * s) ** 2 - 4 * s * a * a * c
        root = 2 * c / ((1 - 2 * a * b * s) + torch.sqrt(disc.clamp(min=0)))
        fallback = torch.where(disc >= 0, root, y)
        return torch.where(ok, x, fallback)
