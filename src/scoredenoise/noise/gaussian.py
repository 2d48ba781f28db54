"""Additive white Gaussian noise (Table 1, row 1)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._base import NoiseModel, param, register


@register
@dataclass(frozen=True)
class Gaussian(NoiseModel):
    """y = x + eps, eps ~ N(0, sigma^2 I).

    Examples
    --------
    >>> import numpy as np
    >>> from scoredenoise.noise import Gaussian
    >>> m = Gaussian(sigma=2.0)
    >>> float(m.solve(np.array([10.0]), np.array([0.5]))[0])   # x = y + sigma^2 s
    12.0
    """

    name = "gaussian"
    table1_row = 1
    formula = "y = x + N(0, sigma^2)"
    summary = "additive white Gaussian noise, the same everywhere in the image"
    solver = "closed form, Eq. (5): x = y + sigma^2 s(y)"
    reference = "Xie et al. 2023, Eq. 4-5"

    sigma: float = param(25.0, unit="data units", low=0.0, low_open=True,
                         description="noise standard deviation")

    def plus_gaussian(self, sigma):
        return self.replace(sigma=math.hypot(self.sigma, sigma))

    estimable = ("sigma",)

    def noise_level(self, mean):
        return np.full(np.shape(mean), self.sigma ** 2)
    def rescaled(self, k):
        return self.replace(sigma=self.sigma * k)

    def _sample(self, x, rng):
        return x + rng.normal(0.0, self.sigma, size=x.shape)

    def _log_prob(self, x, y):
        return (-((y - x) ** 2) / (2 * self.sigma ** 2)
                - math.log(self.sigma * math.sqrt(2 * math.pi)))

    def _score(self, x, y):
        return -(y - x) / self.sigma ** 2

    def _solve(self, y, s):
        return y + self.sigma ** 2 * s

