"""poisson noise plus additive Gaussian (read) noise (Table 1, row 13)."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import register
from ._mixture import GaussianMixtureModel, gaussian_sigma_param
from .poisson import Poisson, lam_param


@register
@dataclass(frozen=True)
class PoissonGaussianMixture(GaussianMixtureModel):
    """y = z + N(0, sigma^2), z ~ poisson(x); solved by Algorithm 5, or with ``exact=True``
    by the exact equation (a sum over counts), as ``poisson-gaussian``."""

    base_cls = Poisson
    name = "poisson+gaussian"
    table1_row = 13
    formula = Poisson.formula + " + N(0, sigma^2)"
    summary = "poisson noise plus additive Gaussian (read) noise"
    no_root = Poisson.no_root + " (applied to z = y + sigma^2 s)"
    solver = ("Algorithm 5: z = y + sigma^2 s (Tweedie), then the base model's solver on "
              "(z, s); exact=True: the exact equation (a sum over counts) by bracketed Newton")
    reference = "Xie et al. 2023, Eq. 19-23, Algorithm 5"

    lam: float = lam_param()

    sigma: float = gaussian_sigma_param()
