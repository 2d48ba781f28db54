"""Signal-dependent Gaussian noise, std a*x + b (Table 1, row 3)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._base import NoiseModel, param, register
from ._iterate import fixed_point


def _signal_params():
    return (
        param(0.98, unit="dimensionless", low=0.0,
              description="slope of the noise standard deviation with the signal"),
        param(25.0, unit="data units", low=0.0, low_open=True,
              description="noise standard deviation at zero signal"),
    )


@register
@dataclass(frozen=True)
class GaussianSignal(NoiseModel):
    """y = x + eps, eps ~ N(0, diag(a x + b)^2).

    ``solve`` runs the paper's Algorithm 2, x <- y + (a x + b)^2 s(y), from x = y until every
    pixel has converged. The map is a contraction, and the iteration converges, where
    ``|2 a (a x + b) s| < 1`` around the solution. Pixels that do not converge get the exact
    root of the quadratic ``s (a x + b)^2 - x + y = 0`` nearest to y, and x = y where that has
    no real root (``4 a s (a y + b) > 1``).
    """

    name = "gaussian-signal"
    table1_row = 3
    formula = "y = x + N(0, (a x + b)^2)"
    summary = "Gaussian noise whose standard deviation grows linearly with the signal"
    solver = ("fixed point, Algorithm 2: x <- y + (a x + b)^2 s(y), converges where "
              "|2 a (a x + b) s| < 1")
    no_root = ("where 4 a s (a y + b) > 1 the quadratic has no real root: x = y; pixels where "
               "the iteration does not converge take the exact quadratic root")
    reference = "Xie et al. 2023, Eq. 4-5, Algorithm 2"

    a: float = _signal_params()[0]
    b: float = _signal_params()[1]

    def rescaled(self, k):
        return self.replace(b=self.b * k)

    def _std(self, x):
        return self.a * x + self.b

    def _sample(self, x, rng):
        return x + self._std(x) * rng.normal(size=x.shape)

    def _log_prob(self, x, y):
        std = self._std(x)
        return -((y - x) ** 2) / (2 * std ** 2) - torch.log(std.abs())

    def _score(self, x, y):
        return -(y - x) / self._std(x) ** 2

    def _solve(self, y, s):
        x, ok = fixed_point(lambda x: y + self._std(x) ** 2 * s, y, self.b)
        for _ in range(2):  # Newton polish: the fixed point converges only linearly
            h = y + self._std(x) ** 2 * s - x
            dh = 2 * self.a * self._std(x) * s - 1
            x = torch.where(ok & (dh != 0), x - h / torch.where(dh != 0, dh, 1.0), x)
        if bool(ok.all()):
            return x
        # exact root of s a^2 x^2 + (2 a b s - 1) x + (b^2 s + y) = 0 closest to y, written
        # in the form that is stable as s -> 0
        a, b = self.a, self.b
        disc = 1 - 4 * a * s * (a * y + b)
        root = 2 * (b * b * s + y) / ((1 - 2 * a * b * s) + torch.sqrt(disc.clamp(min=0)))
        fallback = torch.where(disc >= 0, root, y)
        return torch.where(ok, x, fallback)
