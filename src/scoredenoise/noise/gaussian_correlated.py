"""Correlated additive Gaussian noise, Sigma = sigma^2 A^T A (Table 1, row 2)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from ._base import NoiseModel, param, register
from ._correlation import Correlation, kernel_param
from ._local_gaussian import LocalGaussian, identity


@register
@dataclass(frozen=True)
class GaussianCorrelated(NoiseModel):
    """y = x + sigma A^T n + white_sigma m, n, m ~ N(0, I): covariance
    sigma^2 A^T A + white_sigma^2 I.

    A is the periodic convolution with ``kernel`` over the trailing ``kernel.ndim`` axes. The
    covariance is diagonal in Fourier space, so score and solve are exact FFT filters.
    ``white_sigma`` (default 0, Table 1 row 2) adds independent white noise, e.g. read noise or
    the smoothing a score model was trained with.
    """

    name = "gaussian-correlated"
    table1_row = 2
    formula = "y = x + N(0, sigma^2 A^T A + white_sigma^2 I)"
    summary = "Gaussian noise correlated between neighbouring pixels by the kernel A"
    solver = "closed form, Eq. (5): x = y + (sigma^2 A^T A + white_sigma^2) s(y), by FFT"
    reference = "Xie et al. 2023, Eq. 4-5"

    sigma: float = param(25.0, unit="data units", low=0.0, low_open=True,
                         description="standard deviation of the white noise before A")
    kernel: tuple = kernel_param()
    white_sigma: float = param(0.0, unit="data units", low=0.0,
                               description="standard deviation of additional white noise")

    def _check(self):
        op = Correlation(self.kernel)
        object.__setattr__(self, "kernel", op.kernel)
        object.__setattr__(self, "_op", op)

    @property
    def operator(self) -> Correlation:
        return self._op

    estimable = ("sigma", "kernel")
    white_params = ("white_sigma",)

    def noise_level(self, mean):
        k = np.asarray(self.kernel, dtype=np.float64)
        return np.full(np.shape(mean), self.sigma ** 2 * float(np.sum(k * k)) +
                       self.white_sigma ** 2)

    def white_noise_level(self, mean):
        return np.full(np.shape(mean), self.white_sigma ** 2)

    def rescaled(self, k):
        return dataclasses.replace(self, sigma=self.sigma * k, white_sigma=self.white_sigma * k)

    def plus_gaussian(self, sigma):
        return dataclasses.replace(self, white_sigma=math.hypot(self.white_sigma, sigma))

    def _sample(self, x, rng):
        y = x + self.operator.adjoint(rng.normal(0.0, self.sigma, size=x.shape))
        return y + rng.normal(0.0, self.white_sigma, size=x.shape) if self.white_sigma else y

    def _spectrum(self, h):
        """Fourier multiplier of Sigma: sigma^2 |H|^2 + white_sigma^2."""
        return self.sigma ** 2 * (h * h.conj()).real + self.white_sigma ** 2

    def _log_prob(self, x, y):
        # -(y-x)^T Sigma^-1 (y-x) / 2 as element-wise terms: Sigma^-1/2 (y - x), squared
        r = self.operator.filter(y - x, lambda f, h: f / torch.sqrt(self._spectrum(h)))
        return -0.5 * r ** 2

    def _score(self, x, y):
        return -self.operator.filter(y - x, lambda f, h: f / self._spectrum(h))

    def _solve(self, y, s):
        return y + self.operator.filter(s, lambda f, h: f * self._spectrum(h))

    def _local_gaussian(self, x):
        # exact: G = I, Sigma the Fourier multiplier, its diagonal sigma^2 sum k^2 + w^2
        var = float(self.noise_level(np.zeros(1))[0])
        return LocalGaussian(
            cov=lambda u: self.operator.filter(u, lambda f, h: f * self._spectrum(h)),
            g_inv=identity, g_inv_t=identity, c=np.full(np.shape(x), var), g_inv_sq=1.0)
