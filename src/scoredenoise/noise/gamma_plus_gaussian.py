"""gamma noise plus additive Gaussian (read) noise (Table 1, row 11)."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import register
from ._mixture import GaussianMixtureModel, gaussian_sigma_param
from .gamma import Gamma, alpha_param


@register
@dataclass(frozen=True)
class GammaGaussian(GaussianMixtureModel):
    """y = z + N(0, sigma^2), z ~ gamma(x); solved by Algorithm 5."""

    base_cls = Gamma
    name = "gamma+gaussian"
    table1_row = 11
    formula = Gamma.formula + " + N(0, sigma^2)"
    summary = "gamma noise plus additive Gaussian (read) noise"
    no_root = Gamma.no_root + " (applied to z = y + sigma^2 s)"
    reference = "Xie et al. 2023, Eq. 19-23, Algorithm 5"

    alpha: float = alpha_param()

    sigma: float = gaussian_sigma_param()
