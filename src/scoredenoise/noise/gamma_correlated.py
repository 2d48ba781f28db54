"""Gamma noise correlated by a convolution A (Table 1, row 6)."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import register
from ._correlation import CorrelatedModel, kernel_param
from .gamma import Gamma, alpha_param


@register
@dataclass(frozen=True)
class GammaCorrelated(CorrelatedModel):
    """y = A z, z ~ gamma(x): the gamma model followed by the periodic convolution A.

    Solved by Algorithm 4 (Eq. 18): z = A^-1 y and s~ = A^T s(y) go to the gamma solver;
    its fallback applies where z leaves the gamma support.
    """

    base_cls = Gamma
    name = "gamma-correlated"
    table1_row = 6
    formula = "y = A (x * Gamma(alpha, alpha))"
    summary = "gamma noise, then correlated between neighbouring pixels by the kernel A"
    no_root = Gamma.no_root + " (applied to z = A^-1 y)"
    support = Gamma.support
    reference = "Xie et al. 2023, Eq. 17-18, Algorithm 4"

    alpha: float = alpha_param()
    kernel: tuple = kernel_param()
