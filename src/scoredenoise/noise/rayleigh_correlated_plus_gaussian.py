"""rayleigh noise correlated by A, plus additive Gaussian (read) noise (Table 1, row 16)."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import register
from ._correlation import kernel_param
from ._mixture import GaussianMixtureModel, gaussian_sigma_param
from .rayleigh import rayleigh_sigma_param
from .rayleigh_correlated import RayleighCorrelated


@register
@dataclass(frozen=True)
class RayleighCorrelatedGaussian(GaussianMixtureModel):
    """y = z + N(0, sigma^2), z ~ rayleigh-correlated(x); solved by Algorithm 5."""

    base_cls = RayleighCorrelated
    name = "rayleigh-correlated+gaussian"
    table1_row = 16
    formula = RayleighCorrelated.formula + " + N(0, sigma^2)"
    summary = "rayleigh noise correlated by A, plus additive Gaussian (read) noise"
    no_root = RayleighCorrelated.no_root + " (applied to z = y + sigma^2 s)"
    reference = "Xie et al. 2023, Eq. 19-23, Algorithm 5"
    base_field_map = {"sigma": "rayleigh_sigma"}

    rayleigh_sigma: float = rayleigh_sigma_param()
    kernel: tuple = kernel_param()
    sigma: float = gaussian_sigma_param()
