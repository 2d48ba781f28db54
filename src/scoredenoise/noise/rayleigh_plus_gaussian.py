"""rayleigh noise plus additive Gaussian (read) noise (Table 1, row 15)."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import register
from ._mixture import GaussianMixtureModel, gaussian_sigma_param
from .rayleigh import Rayleigh, rayleigh_sigma_param


@register
@dataclass(frozen=True)
class RayleighGaussian(GaussianMixtureModel):
    """y = z + N(0, sigma^2), z ~ rayleigh(x); solved by Algorithm 5."""

    base_cls = Rayleigh
    name = "rayleigh+gaussian"
    table1_row = 15
    formula = Rayleigh.formula + " + N(0, sigma^2)"
    summary = "rayleigh noise plus additive Gaussian (read) noise"
    no_root = Rayleigh.no_root + " (applied to z = y + sigma^2 s)"
    reference = "Xie et al. 2023, Eq. 19-23, Algorithm 5"
    base_field_map = {"sigma": "rayleigh_sigma"}

    rayleigh_sigma: float = rayleigh_sigma_param()

    sigma: float = gaussian_sigma_param()
