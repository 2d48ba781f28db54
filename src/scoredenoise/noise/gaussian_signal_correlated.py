"""Correlated signal-dependent Gaussian noise (Table 1, row 4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._base import NoiseModel, NoiseModelError, register
from ._correlation import Correlation, kernel_param
from ._iterate import fixed_point
from ._local_gaussian import LocalGaussian, identity
from .gaussian_signal import _signal_params


@register
@dataclass(frozen=True)
class GaussianSignalCorrelated(NoiseModel):
    """y = x + A^T (D n), D = diag(a x + b), n ~ N(0, I): covariance A^T D^2 A.

    ``solve`` runs Algorithm 2 with Sigma(x) = A^T D(x)^2 A: x <- y + A^T D(x)^2 A s(y). It
    converges where ``max|2 a (a x + b) (A s)| ||A||^2 < 1`` (||A|| = max|FFT(kernel)|, 1 for
    the paper's kernel). Pixels left unconverged after the iteration cap, or non-finite, fall
    back to y.

    ``white_sigma`` (default 0) adds independent white noise after A. Its exact likelihood
    needs the inverse of A^T D(x)^2 A + w^2 I, which has no closed form, so it is handled as the
    paper handles mixtures (Algorithm 5): z = y + w^2 s, then the iteration on z.
    """

    name = "gaussian-signal-correlated"
    table1_row = 4
    formula = "y = x + N(0, A^T diag(a x + b)^2 A)"
    summary = "signal-dependent Gaussian noise correlated between neighbours by A"
    solver = "fixed point, Algorithm 2: x <- y + A^T diag(a x + b)^2 A s(y)"
    no_root = "pixels where the iteration does not converge keep x = y"
    reference = "Xie et al. 2023, Eq. 4-5, Algorithm 2"

    a: float = _signal_params()[0]
    b: float = _signal_params()[1]
    kernel: tuple = kernel_param()
    white_sigma: float = _signal_params()[2]

    def _check(self):
        op = Correlation(self.kernel)
        object.__setattr__(self, "kernel", op.kernel)
        object.__setattr__(self, "_op", op)

    @property
    def operator(self) -> Correlation:
        return self._op

    estimable = ("a", "b", "kernel")
    white_params = ("white_sigma",)

    def noise_level(self, mean):
        # locally constant x: Var y_i = sum_j k_j^2 (a x + b)^2 (+ white noise)
        k = np.asarray(self.kernel, dtype=np.float64)
        return (float(np.sum(k * k)) * np.square(self.a * np.asarray(mean) + self.b) +
                self.white_sigma ** 2)

    def white_noise_level(self, mean):
        return np.full(np.shape(mean), self.white_sigma ** 2)

    def rescaled(self, k):
        return self.replace(b=self.b * k, white_sigma=self.white_sigma * k)

    def plus_gaussian(self, sigma):
        return self.replace(white_sigma=float(np.hypot(self.white_sigma, sigma)))

    def _std(self, x):
        return self.a * x + self.b

    def _sample(self, x, rng):
        y = x + self.operator.adjoint(self._std(x) * rng.normal(size=x.shape))
        return y + rng.normal(0.0, self.white_sigma, size=x.shape) if self.white_sigma else y

    def _whiten(self, x, y):
        return self.operator.inverse_adjoint(y - x) / self._std(x)

    def _check_exact(self):
        if self.white_sigma:
            raise NoiseModelError(
                f"{self.name} with white_sigma > 0: the exact likelihood has no closed form; "
                f"the solver uses the paper's approximation (Algorithm 5), see residual()")

    def _log_prob(self, x, y):
        self._check_exact()
        return -0.5 * self._whiten(x, y) ** 2 - torch.log(self._std(x).abs())

    def _score(self, x, y):
        # -A^-1 D^-2 A^-T (y - x)
        self._check_exact()
        return -self.operator.inverse(self._whiten(x, y) / self._std(x))

    def _equation_score(self, x, y, s):
        z = y + self.white_sigma ** 2 * s
        return -self.operator.inverse(self.operator.inverse_adjoint(z - x) / self._std(x) ** 2)

    def _solve(self, y, s):
        y = y + self.white_sigma ** 2 * s  # Algorithm 5 (identity when white_sigma = 0)
        As = self.operator.apply(s)
        x, ok = fixed_point(lambda x: y + self.operator.adjoint(self._std(x) ** 2 * As), y,
                            self.b, elementwise=False)
        return torch.where(ok, x, y)

    def _local_gaussian(self, x):
        # G = I, Sigma = A^T D(x^)^2 A + w^2 (D at the result)
        d2 = np.square(self.a * np.asarray(x, np.float64) + self.b)
        op, w2 = self.operator, self.white_sigma ** 2
        return LocalGaussian(cov=lambda u: op.adjoint(d2 * op.apply(u)) + w2 * np.asarray(u),
                             g_inv=identity, g_inv_t=identity,
                             c=op.adjoint_diagonal(d2) + w2, g_inv_sq=1.0)
