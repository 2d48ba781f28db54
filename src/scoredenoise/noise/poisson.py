"""Poisson (shot) noise on a scale lam (Table 1, row 7)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._base import NoiseModel, param, register, support_error
from ._clipping import count_clipped_moments


def lam_param():
    return param(0.2, unit="1/data units", low=0.0, low_open=True,
                 description="counts per data unit: y = Poisson(lam x) / lam; 1/lam is the gain "
                             "(data units per photon)")


@register
@dataclass(frozen=True)
class Poisson(NoiseModel):
    """y = eta / lam, eta ~ Poisson(lam x).

    The likelihood uses the paper's continuous approximation (Eq. 12), d/dy log (lam y)! ~
    lam log(lam y + 1/2), i.e. log p(y|x) = lam y log(lam x) - lam x - G(lam y) with
    G(u) = (u + 1/2) log(u + 1/2) - (u + 1/2). ``solve`` is Eq. (13),
    x = (y + 1/(2 lam)) exp(s / lam); where y + 1/(2 lam) <= 0 (possible only after A^-1 or
    the mixture step) there is no root and x = 0.
    """

    name = "poisson"
    #: a Gaussian mixture of this model can solve its exact likelihood (a sum over counts)
    exact_mixture_solve = True
    table1_row = 7
    formula = "y = Poisson(lam x) / lam"
    summary = "shot noise: photon counts scaled by 1/lam"
    solver = "closed form, Eq. (13): x = (y + 1/(2 lam)) exp(s(y) / lam)"
    no_root = "where y + 1/(2 lam) <= 0: x = 0"
    support = "y >= 0"
    reference = "Xie et al. 2023, Eq. 10-13"

    lam: float = lam_param()

    estimable = ("lam",)

    def noise_level(self, mean):
        return np.maximum(mean, 0.0) / self.lam

    def clipped_moments(self, mean, low, high):
        return count_clipped_moments(mean, 1.0 / self.lam, 0.0, 0.0, low, high)

    def rescaled(self, k):
        return self.replace(lam=self.lam / k)

    def _check_x(self, x):
        if bool((x < 0).any()):
            support_error(self.name, "a non-negative clean image", x, x < 0,
                          "Poisson rates cannot be negative")

    def _check_y(self, y):
        if bool((y < 0).any()):
            support_error(self.name, ">= 0 (scaled photon counts)", y, y < 0,
                          "if a camera offset or read noise makes values negative use "
                          "'poisson-gaussian' with its offset and read_noise")

    def _sample(self, x, rng):
        return rng.poisson(self.lam * x) / self.lam

    def _log_prob(self, x, y):
        lam = self.lam
        u = lam * y + 0.5
        return torch.xlogy(lam * y, lam * x) - lam * x - (u * torch.log(u) - u)

    def _score(self, x, y):
        lam = self.lam
        return lam * torch.log(lam * x) - lam * torch.log(lam * y + 0.5)

    def _solve(self, y, s):
        base = y + 0.5 / self.lam
        return torch.where(base > 0, base * torch.exp(s / self.lam), torch.zeros_like(y))

    def _mixture_components(self, x, y, sigma):
        """Exact sum over counts k: nodes z = k / lam, weights Poisson(k; lam x)."""
        lam = self.lam
        lx, ly = lam * x.clamp(min=0), lam * y
        hi = torch.maximum(lx, ly)
        spread = 8 * torch.sqrt(hi.clamp(min=0) + 1) + 8 + 8 * sigma * lam
        lo = (torch.minimum(lx, ly) - spread).floor().clamp(min=0)
        width = int((hi + spread - lo).max().ceil()) + 1
        k = lo.unsqueeze(-1) + torch.arange(width, dtype=y.dtype, device=y.device)
        logw = torch.xlogy(k, lx.unsqueeze(-1)) - lx.unsqueeze(-1) - torch.lgamma(k + 1)
        return k / lam, logw
