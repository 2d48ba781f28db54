"""Poisson noise correlated by a convolution A (Table 1, row 8)."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import register
from ._correlation import CorrelatedModel, kernel_param
from .poisson import Poisson, lam_param


@register
@dataclass(frozen=True)
class PoissonCorrelated(CorrelatedModel):
    """y = A z, z ~ poisson(x): the poisson model followed by the periodic convolution A.

    Solved by Algorithm 4 (Eq. 18): z = A^-1 y and s~ = A^T s(y) go to the poisson solver;
    its fallback applies where z leaves the poisson support.
    """

    base_cls = Poisson
    name = "poisson-correlated"
    table1_row = 8
    formula = "y = A Poisson(lam x) / lam"
    summary = "poisson noise, then correlated between neighbouring pixels by the kernel A"
    no_root = Poisson.no_root + " (applied to z = A^-1 y)"
    support = Poisson.support
    reference = "Xie et al. 2023, Eq. 17-18, Algorithm 4"

    lam: float = lam_param()
    kernel: tuple = kernel_param()
