"""gamma noise correlated by A, plus additive Gaussian (read) noise (Table 1, row 12)."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import register
from ._correlation import kernel_param
from ._mixture import GaussianMixtureModel, gaussian_sigma_param
from .gamma import alpha_param
from .gamma_correlated import GammaCorrelated


@register
@dataclass(frozen=True)
class GammaCorrelatedGaussian(GaussianMixtureModel):
    """y = z + N(0, sigma^2), z ~ gamma-correlated(x); solved by Algorithm 5."""

    base_cls = GammaCorrelated
    name = "gamma-correlated+gaussian"
    table1_row = 12
    formula = GammaCorrelated.formula + " + N(0, sigma^2)"
    summary = "gamma noise correlated by A, plus additive Gaussian (read) noise"
    no_root = GammaCorrelated.no_root + " (applied to z = y + sigma^2 s)"
    reference = "Xie et al. 2023, Eq. 19-23, Algorithm 5"

    alpha: float = alpha_param()
    kernel: tuple = kernel_param()
    sigma: float = gaussian_sigma_param()
