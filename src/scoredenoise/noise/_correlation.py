"""The correlation operator A (a small convolution kernel) and correlated noise models.

A is a periodic convolution over the trailing ``kernel.ndim`` axes of an array (2D kernels act
on each plane of a stack, 3D kernels on volumes). Periodic boundaries make A a circulant
operator: diagonal in the Fourier basis, so its adjoint (correlation with the same kernel) and
its inverse are exact and cheap by FFT. Leading axes (time, channel, planes for a 2D kernel) are
a batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ._base import NoiseModel, NoiseModelError, param
from ._local_gaussian import LocalGaussian
from ._operator import PAPER_KERNEL, RCOND, Correlation  # noqa: F401 (their old home)

__all__ = ["Correlation", "PAPER_KERNEL", "CorrelatedModel", "kernel_param"]

def kernel_param():
    """The ``kernel`` field shared by every correlated model."""
    return param(PAPER_KERNEL, unit="kernel", kind="kernel",
                 description="correlation kernel A over the trailing axes (default: Eq. 30)")


@dataclass(frozen=True)
class CorrelatedModel(NoiseModel):
    """y = A z with z ~ p_z(z|x) element-wise (Table 1 rows 6, 8, 10), solved by Algorithm 4.

    Subclasses set ``base_cls`` and declare the base model's fields plus ``kernel``.
    """

    base_cls: ClassVar[type[NoiseModel]]
    solver: ClassVar[str] = (
        "Algorithm 4: s~ = A^T s, z = A^-1 y (FFT), then the element-wise model's solver")

    def _check(self) -> None:
        op = Correlation(self.kernel)
        object.__setattr__(self, "kernel", op.kernel)
        object.__setattr__(self, "_op", op)
        object.__setattr__(self, "_base_model", self.base_cls(
            **{p.name: getattr(self, p.name) for p in self.base_cls.parameters()}))

    @property
    def operator(self) -> Correlation:
        return self._op

    @property
    def base(self) -> NoiseModel:
        """The element-wise model of z."""
        return self._base_model

    @property
    def estimable(self) -> tuple[str, ...]:  # the base model's, and the kernel (from the
        return self.base_cls.estimable + ("kernel",)  # noise's covariance, estimate_kernel)

    @property
    def mean_gain(self) -> float:  # locally constant x: E y = sum(k) E z
        return self.base.mean_gain * float(np.sum(np.asarray(self.kernel, np.float64)))

    def noise_level(self, mean):
        # locally constant x: E y = sum(k) E z and Var y = sum(k^2) Var z
        k = np.asarray(self.kernel, dtype=np.float64)
        return float(np.sum(k * k)) * self.base.noise_level(np.asarray(mean) / float(k.sum()))

    def rescaled(self, k: float) -> NoiseModel:
        return dataclasses.replace(self, **self.base.rescaled(k).to_dict()["params"])

    def _check_x(self, x):
        self.base._check_x(x)

    def _check_y(self, y):
        self.base._check_y(y)

    def _sample(self, x, rng):
        return self.operator.apply(self.base._sample(x, rng))

    def _log_prob(self, x, y):
        # log p_y(y|x) = sum log p_z(A^-1 y | x) - log|det A|; the constant is dropped
        return self.base._log_prob(x, self.operator.inverse(y))

    def _score(self, x, y):
        # Eq. (18)
        return self.operator.inverse_adjoint(self.base._score(x, self.operator.inverse(y)))

    def _solve(self, y, s):
        return self.base._solve(self.operator.inverse(y), self.operator.adjoint(s))

    def _local_gaussian(self, x):
        # y = A z, z = g x + n element-wise (variance v at the result): G = g A and
        # Sigma = A diag(v) A^T, so C = G^-1 Sigma G^-T = v / g^2
        op, g = self.operator, self.base.mean_gain
        v = self.base._variance_at_clean(x)
        return LocalGaussian(cov=lambda u: op.apply(v * op.adjoint(u)),
                             g_inv=lambda u: op.inverse(u) / g,
                             g_inv_t=lambda u: op.inverse_adjoint(u) / g, c=v / g ** 2,
                             g_inv_sq=op.inverse_gram_diagonal(np.shape(x)) / g ** 2)

    def _mixture_components(self, x, y, sigma):
        raise NoiseModelError(
            f"{self.name} + Gaussian: the exact likelihood of A z + Gaussian noise is a "
            f"d-dimensional integral with no closed form; the solver uses the paper's "
            f"approximation (Eq. 22), see residual()")
