"""The exact solve of a photon count plus Gaussian noise, from one table per parameter set.

For y = step * k + offset + N(0, sigma^2), k ~ Poisson(x / step), the exact likelihood
equation s(y) = grad_y log p(y|x) of the mixture reads

    E[k | y, lam] = (y - offset + sigma^2 s) / step = T,    lam = x / step,

where the posterior over counts has weights w_k ~ Poisson(k; lam) N(y - offset; k step,
sigma^2). Written out, log w_k = k eta - log k! - c k^2 / 2 + (terms without k), with

    eta = log lam + step (y - offset) / sigma^2,    c = step^2 / sigma^2:

the posterior, and so its mean M(eta) = E[k], depends on lam and y only through eta. M
increases with eta (its derivative is the posterior variance of k), so the equation has one
root eta* = M^-1(T) where T > 0 (none, x = 0, elsewhere), and

    x = step * exp(eta* - step (y - offset) / sigma^2)

for integer and float data alike. M is tabulated once per parameter set on a uniform grid of
eta (``ETA_STEP``) with its slope, inverted per pixel by one binary search and a monotone
cubic Hermite interpolation: tens of milliseconds a 512x512 plane, equal to the per-pixel
Newton solve within 1e-4 of the data range wherever the root is defined to that precision
(tests/noise/test_count_table.py). Below the table (M under 1e-10: at most one count is
plausible) M^-1(T) = c / 2 + log(T / (1 - T)) exactly to that order.

The emccd model's solve shares the row tables and their inversion (:class:`MonotoneRows`).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch

__all__ = ["solve_count_mixture", "BRACKET", "MonotoneRows", "lam_nodes", "value_rows"]

#: the root is looked for in x <= y - offset + BRACKET * (sigma + step + sqrt((y - offset) step))
BRACKET = 12.0
#: lam nodes per row of the table, of which _DECADES log-spaced below the first sqrt node
NODES = 136
_DECADES = 8
#: rows of y: the data's own values up to this many, else a grid of GRID_ROWS rows
VALUE_ROWS = 8192
GRID_ROWS = 512
#: table elements evaluated at once (rows x nodes x counts), bounding memory
_CHUNK = 2 ** 22
_cache: OrderedDict = OrderedDict()
_CACHE_SIZE = 8


class MonotoneRows:
    """Per row of y, an increasing function v(lam) tabulated on nodes of lam with its slope
    dlam/dv, inverted per pixel: one binary search over the flattened table (rows side by
    side, each shifted to start at 0) and a monotone cubic Hermite interpolation."""

    def __init__(self, lam: torch.Tensor, value: torch.Tensor, slope: torch.Tensor):
        value = torch.cummax(value, dim=1).values  # rounding must not break the order
        self.lam, self.slope, self.nodes = lam, slope, lam.shape[1]
        self.base = value[:, 0].clone()
        self.rise = value - self.base[:, None]
        self.top = self.rise[:, -1]
        self.span = float(self.top.max()) + 1.0
        idx = torch.arange(lam.shape[0], dtype=lam.dtype, device=lam.device)[:, None]
        self.keys = (idx * self.span + self.rise).reshape(-1)

    def invert(self, row: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """lam with v(lam; row) = target, clamped to the row's nodes, per pixel."""
        j = self.nodes
        t = target - self.base[row]
        top = self.top[row]
        tc = torch.minimum(t.clamp(min=0), top)
        pos = torch.searchsorted(self.keys, row.to(self.keys.dtype) * self.span + tc)
        base = row * j
        i1 = (pos - base).clamp(1, j - 1) + base
        i0 = i1 - 1
        v, lam, d = self.rise.reshape(-1), self.lam.reshape(-1), self.slope.reshape(-1)
        v0, v1, l0, l1 = v[i0], v[i1], lam[i0], lam[i1]
        h = (v1 - v0).clamp(min=1e-300)
        sec = (l1 - l0) / h
        # monotone cubic Hermite (Fritsch-Carlson: slopes at most 3x the secant)
        d0 = torch.minimum(d[i0].clamp(min=0), 3 * sec)
        d1 = torch.minimum(d[i1].clamp(min=0), 3 * sec)
        f = ((tc - v0) / h).clamp(0, 1)
        f2, f3 = f * f, f * f * f
        out = ((2 * f3 - 3 * f2 + 1) * l0 + (f3 - 2 * f2 + f) * h * d0
               + (3 * f2 - 2 * f3) * l1 + (f3 - f2) * h * d1)
        return torch.where(t >= top, l1, out)


def lam_nodes(lam_hi: torch.Tensor, nodes: int = NODES) -> torch.Tensor:
    """Nodes of lam per row up to ``lam_hi``: 0, then uniform in sqrt(lam), and below the
    first sqrt node decades down to 1e-8 of it (where y is far above a tiny rate, the
    posterior count rises from 0 to what y reads within them)."""
    u = torch.linspace(0.0, 1.0, nodes - _DECADES, dtype=lam_hi.dtype, device=lam_hi.device)
    low = u[1] ** 2 * 10.0 ** torch.arange(-_DECADES, 0, dtype=lam_hi.dtype,
                                           device=lam_hi.device)
    return lam_hi[:, None] * torch.cat([u[:1], low, u[1:] ** 2])


def value_rows(y: torch.Tensor, grid: int = GRID_ROWS):
    """Rows of the table for data ``y`` and the row of each pixel: ``(rows, index, exact,
    key)``. The data's own values where they are few (``exact``: integer camera data, lattice
    data), else a grid of rows (each pixel then starts from its nearest row and is polished
    by Newton steps on its own value); ``key`` caches tables of integer data by range."""
    lo, hi = float(y.min()), float(y.max())
    if torch.equal(y, torch.round(y)) and hi - lo + 1 <= VALUE_ROWS:
        rows = torch.arange(lo, hi + 1, dtype=y.dtype, device=y.device)
        return rows, (y - lo).long(), True, ("integers", lo, hi)
    values, inverse = torch.unique(y, return_inverse=True)
    if values.numel() <= VALUE_ROWS:
        return values, inverse, True, None
    n = grid
    rows = torch.linspace(lo, hi, n, dtype=y.dtype, device=y.device)
    index = torch.round((y - lo) / max(hi - lo, 1e-300) * (n - 1)).long()
    return rows, index, False, ("grid", lo, hi, n)


#: spacing of the eta grid of the Poisson + Gaussian table (the mean count moves by at most
#: about one per unit of eta); nodes are computed in blocks of ETA_BLOCK on a lattice fixed by
#: the parameters alone, so a pixel's result never depends on the other pixels solved with it
#: (chunked, resumed and distributed runs agree exactly); at most MAX_ETA_NODES per table
ETA_STEP = 1.0 / 16
ETA_BLOCK = 4096
MAX_ETA_NODES = 2 ** 22
#: below the table: M(eta) under this, where at most one count is plausible
_M_FLOOR = 1e-10


def _eta_moments(eta: torch.Tensor, c: float):
    """Mean and variance of the count k under weights exp(k eta - log k! - c k^2 / 2)."""
    # the mode solves h(k) = eta - log(k + 1/2) - c k = 0 (h decreasing and convex: Newton
    # from k = 0 rises to it); the width is the curvature's
    k = torch.zeros_like(eta)
    for _ in range(60):
        h = eta - torch.log(k + 0.5) - c * k
        k_new = (k + h / (1.0 / (k + 0.5) + c)).clamp(min=0)
        if bool(((k_new - k).abs() < 0.05).all()):
            k = k_new
            break
        k = k_new
    width = (1.0 / (k + 0.5) + c).rsqrt()
    lo = (k - 12 * width - 4).floor().clamp(min=0)
    n = int(((k + 12 * width + 4).ceil() - lo).max().item()) + 1
    m = torch.empty_like(eta)
    v = torch.empty_like(eta)
    per = max(1, _CHUNK // n)
    for i in range(0, eta.numel(), per):
        kk = lo[i:i + per, None] + torch.arange(n, dtype=eta.dtype, device=eta.device)
        logw = kk * eta[i:i + per, None] - torch.lgamma(kk + 1) - 0.5 * c * kk * kk
        w = torch.softmax(logw, dim=-1)
        m[i:i + per] = (w * kk).sum(-1)
        v[i:i + per] = ((w * kk * kk).sum(-1) - m[i:i + per] ** 2).clamp(min=0)
    return m, v


class _EtaTable:
    """M(eta) with its slopes on the lattice eta_j = lo + j ETA_STEP, j = 0, 1, ...,
    computed block by block as the data need them; ``rows`` inverts it."""

    def __init__(self, c: float, device):
        self.c = c
        self.lo = 0.5 * c + math.log(_M_FLOOR)  # M(lo) ~ 1e-10: the floor
        self.device = device
        self.blocks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.rows: MonotoneRows | None = None

    @property
    def hi(self) -> float:
        return self.lo + (len(self.blocks) * ETA_BLOCK - 1) * ETA_STEP

    def cover(self, hi: float) -> bool:
        """Extend the table to ``hi``; False where that needs more than MAX_ETA_NODES."""
        need = math.ceil((hi - self.lo) / ETA_STEP / ETA_BLOCK)
        if need * ETA_BLOCK > MAX_ETA_NODES:
            return False
        if need > len(self.blocks) or self.rows is None:
            while len(self.blocks) < max(need, 1):
                j = len(self.blocks) * ETA_BLOCK + torch.arange(
                    ETA_BLOCK, dtype=torch.float64, device=self.device)
                eta = self.lo + j * ETA_STEP
                m, v = _eta_moments(eta, self.c)
                self.blocks.append((eta, m, v))
            eta, m, v = (torch.cat(t) for t in zip(*self.blocks))
            self.rows = MonotoneRows(eta[None], m[None], (1.0 / v.clamp(min=1e-300))[None])
        return True


def _eta_table(step: float, sigma: float, device) -> _EtaTable:
    key = (step, sigma, str(device))
    table = _cache.get(key)
    if table is None:
        table = _cache[key] = _EtaTable(step * step / (sigma * sigma), device)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    return table


def solve_count_mixture(y: torch.Tensor, s: torch.Tensor, *, step: float, offset: float,
                        sigma: float):
    """x >= 0 solving the exact equation (module docstring) per pixel.

    ``y`` and ``s`` are float64 tensors of one shape; returns float64 of that shape, or None
    where the table would need more than ``MAX_ETA_NODES`` nodes (read noise far below the
    photon step on data of very many counts: solve per pixel then). Where the score asks for
    more than the data allow (no root below the reference solver's bracket, ``BRACKET``), x
    is that bound, as the reference gives.
    """
    shape = y.shape
    yz = y.reshape(-1) - offset
    s2 = sigma * sigma
    c = step * step / s2
    target = (yz + s2 * s.reshape(-1)) / step  # T, in counts
    shift = step * yz / s2  # eta = log lam + shift
    yp = yz.clamp(min=0)
    lam_hi = (yp + BRACKET * (sigma + step + torch.sqrt(yp * step))) / step
    out = torch.zeros_like(yz)
    pos = target > 0
    if bool(pos.any()):
        t, sh, top = target[pos], shift[pos], lam_hi[pos]
        table = _eta_table(step, sigma, y.device)
        if not table.cover(float((torch.log(top) + sh).max())):
            return None
        rows = table.rows
        floor = float(rows.base[0])  # M at the table's lowest node
        eta = rows.invert(torch.zeros_like(t, dtype=torch.long), t)
        small = t <= floor
        eta = torch.where(small, 0.5 * c + torch.log(t) - torch.log1p(-t.clamp(max=0.5)), eta)
        # a root below 1e-6 of (sigma + step) is that (as the reference's tolerance): where
        # the read noise is far below the step, exp(eta - shift) can underflow to 0, whose
        # equation (no count possible) differs from any rate above it
        floor_lam = 1e-6 * (sigma + step) / step
        lam = torch.minimum(torch.exp(eta - sh).clamp(min=floor_lam), top)
        out[pos] = step * lam
    return out.reshape(shape)
