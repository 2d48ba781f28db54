"""Rayleigh noise correlated by a convolution A (Table 1, row 10)."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import register
from ._correlation import CorrelatedModel, kernel_param
from .rayleigh import Rayleigh, rayleigh_sigma_param


@register
@dataclass(frozen=True)
class RayleighCorrelated(CorrelatedModel):
    """y = A z, z ~ rayleigh(x): the rayleigh model followed by the periodic convolution A.

    Solved by Algorithm 4 (Eq. 18): z = A^-1 y and s~ = A^T s(y) go to the rayleigh solver;
    its fallback applies where z leaves the rayleigh support.
    """

    base_cls = Rayleigh
    name = "rayleigh-correlated"
    table1_row = 10
    formula = "y = A ((1 + Rayleigh(sigma)) x)"
    summary = "rayleigh noise, then correlated between neighbouring pixels by the kernel A"
    no_root = Rayleigh.no_root + " (applied to z = A^-1 y)"
    support = Rayleigh.support
    reference = "Xie et al. 2023, Eq. 17-18, Algorithm 4"

    sigma: float = rayleigh_sigma_param()
    kernel: tuple = kernel_param()
