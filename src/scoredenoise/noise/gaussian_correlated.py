"""Correlated additive Gaussian noise, Sigma = sigma^2 A^T A (Table 1, row 2)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ._base import NoiseModel, param, register
from ._correlation import Correlation, kernel_param


@register
@dataclass(frozen=True)
class GaussianCorrelated(NoiseModel):
    """y = x + sigma A^T n, n ~ N(0, I): covariance sigma^2 A^T A.

    A is the periodic convolution with ``kernel`` over the trailing ``kernel.ndim`` axes.
    """

    name = "gaussian-correlated"
    table1_row = 2
    formula = "y = x + N(0, sigma^2 A^T A)"
    summary = "Gaussian noise correlated between neighbouring pixels by the kernel A"
    solver = "closed form, Eq. (5): x = y + sigma^2 A^T A s(y)"
    reference = "Xie et al. 2023, Eq. 4-5"

    sigma: float = param(25.0, unit="data units", low=0.0, low_open=True,
                         description="standard deviation of the white noise before A")
    kernel: tuple = kernel_param()

    def _check(self):
        op = Correlation(self.kernel)
        object.__setattr__(self, "kernel", op.kernel)
        object.__setattr__(self, "_op", op)

    @property
    def operator(self) -> Correlation:
        return self._op

    def rescaled(self, k):
        return dataclasses.replace(self, sigma=self.sigma * k)

    def _sample(self, x, rng):
        return x + self.operator.adjoint(rng.normal(0.0, self.sigma, size=x.shape))

    def _whiten(self, x, y):
        return self.operator.inverse_adjoint(y - x) / self.sigma

    def _log_prob(self, x, y):
        return -0.5 * self._whiten(x, y) ** 2

    def _score(self, x, y):
        # -Sigma^-1 (y - x) = -A^-1 A^-T (y - x) / sigma^2
        return -self.operator.inverse(self._whiten(x, y)) / self.sigma

    def _solve(self, y, s):
        return y + self.sigma ** 2 * self.operator.adjoint(self.operator.apply(s))
