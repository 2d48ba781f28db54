"""poisson noise correlated by A, plus additive Gaussian (read) noise (Table 1, row 14)."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import register
from ._correlation import kernel_param
from ._mixture import GaussianMixtureModel, gaussian_sigma_param
from .poisson import lam_param
from .poisson_correlated import PoissonCorrelated


@register
@dataclass(frozen=True)
class PoissonCorrelatedGaussian(GaussianMixtureModel):
    """y = z + N(0, sigma^2), z ~ poisson-correlated(x); solved by Algorithm 5."""

    base_cls = PoissonCorrelated
    name = "poisson-correlated+gaussian"
    table1_row = 14
    formula = PoissonCorrelated.formula + " + N(0, sigma^2)"
    summary = "poisson noise correlated by A, plus additive Gaussian (read) noise"
    no_root = PoissonCorrelated.no_root + " (applied to z = y + sigma^2 s)"
    reference = "Xie et al. 2023, Eq. 19-23, Algorithm 5"

    lam: float = lam_param()
    kernel: tuple = kernel_param()
    sigma: float = gaussian_sigma_param()
