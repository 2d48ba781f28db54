"""Multiplicative Gamma noise (Table 1, row 5)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ._base import NoiseModel, param, register, safe_log, support_error


def alpha_param():
    return param(26.0, unit="dimensionless", low=1.0, low_open=True,
                 description="shape of the Gamma(alpha, alpha) multiplier; 1/sqrt(alpha) is the "
                             "relative noise level")


@register
@dataclass(frozen=True)
class Gamma(NoiseModel):
    """y = eta * x, eta ~ Gamma(alpha, alpha) (mean 1, variance 1/alpha).

    ``solve`` is Eq. (9), x = alpha y / (alpha - 1 - y s). Where the denominator is <= 0, or
    y <= 0 (possible after A^-1 or the mixture step), there is no positive root; x is then
    max(y, 0), the maximum-likelihood value of x for that pixel alone.
    """

    name = "gamma"
    table1_row = 5
    formula = "y = x * Gamma(alpha, alpha)"
    summary = "multiplicative (speckle-like) noise with mean 1 and variance 1/alpha"
    solver = "closed form, Eq. (9): x = alpha y / (alpha - 1 - y s(y))"
    no_root = "where alpha - 1 - y s <= 0 or y <= 0: x = max(y, 0) (the noisy value)"
    support = "y > 0"
    reference = "Xie et al. 2023, Eq. 6-9"

    alpha: float = alpha_param()

    def _range_hint(self, name):
        return "; alpha <= 1 has no finite-mean posterior solution (Eq. 9 needs alpha > 1)"

    estimable = ("alpha",)

    def noise_level(self, mean):
        return np.square(mean) / self.alpha

    def posterior_variance(self, y, score, score_jacobian_diagonal):
        """Var[x_i | y] through the exponential family: y | x ~ Gamma(alpha, rate alpha / x)
        has the natural parameter eta = -alpha / x and the sufficient statistic y, so
        second-order Tweedie holds for eta exactly: E[eta | y] = s - (alpha - 1) / y (the
        solve, Eq. 9, is x = -alpha / E[eta | y]) and Var[eta | y] = ds/dy + (alpha - 1) /
        y^2; the delta method maps it to x: Var[x | y] = (x^2 / alpha)^2 Var[eta | y]
        (clipped at 0). Against exact posteriors (docs/uncertainty.md) it is far closer than
        the local Gaussian approximation of the other models (median std ratio 1.006, 80 %
        of pixels within 0.79-1.14, at alpha 26)."""
        y64 = np.asarray(y, np.float64)
        x = np.asarray(self.solve(np.asarray(y, np.float32), np.asarray(score, np.float32)),
                       np.float64)
        v_eta = np.asarray(score_jacobian_diagonal, np.float64) + (self.alpha - 1) / y64 ** 2
        return np.clip((x * x / self.alpha) ** 2 * v_eta, 0.0, None)

    def rescaled(self, k):
        return self

    def _check_x(self, x):
        if bool((x < 0).any()):
            support_error(self.name, "a non-negative clean image", x, x < 0,
                          "Gamma noise multiplies a non-negative intensity")

    def _check_y(self, y):
        if bool((y <= 0).any()):
            support_error(self.name, "> 0 (Gamma noise is multiplicative and positive)", y,
                          y <= 0, "remove the background offset so data stay positive, or use "
                                  "'gamma+gaussian', which allows additive read noise")

    def _sample(self, x, rng):
        return x * rng.gamma(self.alpha, 1.0 / self.alpha, size=x.shape)

    def _log_prob(self, x, y):
        a = self.alpha
        valid = y > 0
        y_safe = torch.where(valid, y, torch.ones_like(y))
        val = (a * math.log(a) - math.lgamma(a) - a * safe_log(x) + (a - 1) * torch.log(y_safe)
               - a * y_safe / x)
        return torch.where(valid, val, torch.full_like(val, -math.inf))

    def _score(self, x, y):
        return (self.alpha - 1) / y - self.alpha / x

    def _solve(self, y, s):
        a = self.alpha
        den = a - 1 - y * s
        ok = (den > 0) & (y > 0)
        x = a * y / torch.where(ok, den, torch.ones_like(den))
        return torch.where(ok, x, y.clamp(min=0))
