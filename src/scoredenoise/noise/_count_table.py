"""The exact solve of a photon count plus Gaussian noise, tabulated once per parameter set.

For y = step * k + offset + N(0, sigma^2), k ~ Poisson(x / step), the exact likelihood
equation s(y) = grad_y log p(y|x) of the mixture reads

    step * E[k | y, lam] = y - offset + sigma^2 s = z_bar,    lam = x / step,

where the posterior over counts has weights w_k ~ Poisson(k; lam) N(y - offset; k step,
sigma^2). The left side, m(lam; y) = E[k | y, lam], increases with lam (its derivative in
log lam is the posterior variance of k), from 0 at lam = 0: the equation has one root where
z_bar > 0 and none (x = 0) elsewhere.

Solving it per pixel (bracketed Newton over sums of counts) takes seconds a plane. Here
m(lam; y) is tabulated instead, once per parameter set, on rows of y (the data's own values
where they are few, e.g. integer camera data, else a grid fine against sigma) and nodes of
lam (uniform in sqrt(lam), up to the reference solver's bracket), each with its slope
dm/dlam. Every pixel then finds its cell by one binary search over the flattened table and
inverts m by monotone cubic Hermite interpolation: tens of milliseconds a 512x512 plane,
equal to the per-pixel solve within 1e-4 of the data range where the root is well defined
(tests/noise/test_count_table.py).
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


def _count_window(yz, lam, step, s2):
    """Counts k covering the posterior w_k ~ Poisson(k; lam) N(yz; k step, s2) for every
    (yz, lam): +-12 widths and 4 counts around its mode (Laplace).

    log w_k is concave in k, so the posterior is unimodal. Its mode solves
    h(k) = log lam - log(k + 1/2) + step (yz - k step) / s2 = 0 (digamma(k + 1) ~
    log(k + 1/2)); h is convex and decreasing, so Newton from k = 0 rises monotonically to
    the root. The width is the curvature's, 1 / sqrt(1 / (k + 1/2) + step^2 / s2)."""
    loglam = torch.log(lam.clamp(min=1e-300))
    c = step * step / s2
    k = torch.zeros_like(lam)
    for _ in range(60):
        h = loglam - torch.log(k + 0.5) + step * (yz - k * step) / s2
        k_new = (k + h / (1.0 / (k + 0.5) + c)).clamp(min=0)
        if bool(((k_new - k).abs() < 0.05).all()):
            k = k_new
            break
        k = k_new
    width = (1.0 / (k + 0.5) + c).rsqrt()
    lo = (k - 12 * width - 4).floor().clamp(min=0)
    hi = (k + 12 * width + 4).ceil()
    return lo, int((hi - lo).max().item()) + 1


def _moments(yz, lam, step, s2):
    """Posterior mean and variance of the count k, for rows yz (R, 1) and nodes lam (R, J)."""
    lo, width = _count_window(yz, lam, step, s2)
    k = lo.unsqueeze(-1) + torch.arange(width, dtype=lam.dtype, device=lam.device)
    logw = (torch.xlogy(k, lam.unsqueeze(-1)) - torch.lgamma(k + 1)
            - (yz.unsqueeze(-1) - k * step) ** 2 / (2 * s2))
    w = torch.softmax(logw, dim=-1)
    m = (w * k).sum(-1)
    v = ((w * k * k).sum(-1) - m * m).clamp(min=0)
    return m, v


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


class _Table(MonotoneRows):
    """m(lam; y) = E[k | y, lam] on rows of y and nodes of lam, with the slopes dlam/dm."""

    def __init__(self, rows: torch.Tensor, step: float, offset: float, sigma: float,
                 nodes: int = NODES):
        s2 = sigma * sigma
        yz = rows - offset
        yp = yz.clamp(min=0)
        # the reference solver's bracket, in counts
        lam = lam_nodes((yp + BRACKET * (sigma + step + torch.sqrt(yp * step))) / step, nodes)
        m = torch.empty_like(lam)
        v = torch.empty_like(lam)
        r0 = 0
        while r0 < rows.numel():  # chunks of rows, sized by their count window
            _, width = _count_window(yz[r0:r0 + 1, None], lam[r0:r0 + 1], step, s2)
            r1 = min(rows.numel(), r0 + max(1, _CHUNK // (nodes * max(width, 1) * 4)))
            m[r0:r1], v[r0:r1] = _moments(yz[r0:r1, None], lam[r0:r1], step, s2)
            r0 = r1
        m[:, 0] = 0.0  # lam = 0: no count
        # dlam/dm = lam / Var[k] (d m / d log lam = Var[k]); the first node's is the secant
        slope = lam / v.clamp(min=1e-300)
        slope[:, 0] = lam[:, 1] / (m[:, 1] - m[:, 0]).clamp(min=1e-300)
        super().__init__(lam, m, slope)


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


def _polish(yz, target, lam, step, s2, max_iter=60):
    """Bracketed Newton on m(lam; yz) = target per pixel, from ``lam`` (the nearest row's
    root), inside [0, the bracket]; bisection where a step leaves the bracket."""
    yp = yz.clamp(min=0)
    hi = (yp + BRACKET * (math.sqrt(s2) + step + torch.sqrt(yp * step))) / step
    lo = torch.zeros_like(lam)
    lam = torch.minimum(lam, hi).clone()
    active = target > 0
    tol = 1e-9 * (1.0 + hi)
    for _ in range(max_iter):
        idx = torch.nonzero(active).reshape(-1)
        if idx.numel() == 0:
            break
        la, lo_a, hi_a = lam[idx], lo[idx], hi[idx]
        m, v = _moments(yz[idx, None], la[:, None], step, s2)
        m, v = m[:, 0], v[:, 0]
        r = m - target[idx]
        lo_a = torch.where(r < 0, la, lo_a)
        hi_a = torch.where(r >= 0, la, hi_a)
        new = la - r * la / v.clamp(min=1e-300)  # dm/dlam = Var[k] / lam
        bad = ~torch.isfinite(new) | (new <= lo_a) | (new >= hi_a)
        new = torch.where(bad, (lo_a + hi_a) / 2, new)
        done = ((new - la).abs() <= tol[idx]) | ((hi_a - lo_a) <= tol[idx])
        lam[idx], lo[idx], hi[idx] = new, lo_a, hi_a
        active[idx[done]] = False
    return lam


def solve_count_mixture(y: torch.Tensor, s: torch.Tensor, *, step: float, offset: float,
                        sigma: float):
    """x >= 0 solving the exact equation (module docstring) per pixel.

    ``y`` and ``s`` are float64 tensors of one shape; returns float64 of that shape.
    """
    shape = y.shape
    yd, sd = y.reshape(-1), s.reshape(-1)
    rows, index, exact, key = value_rows(yd)
    ck = None if key is None else (key, step, offset, sigma, str(y.device))
    table = _cache.get(ck) if ck is not None else None
    if table is None:
        table = _Table(rows, step, offset, sigma)
        if ck is not None:
            _cache[ck] = table
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    else:
        _cache.move_to_end(ck)
    s2 = sigma * sigma
    target = (yd - offset + s2 * sd) / step  # z_bar in counts
    if exact:
        lam = table.invert(index, target)
    else:  # start at the nearest row's root for the same score, then polish on its own y
        start = table.invert(index, (rows[index] - offset + s2 * sd) / step)
        lam = _polish(yd - offset, target, start, step, s2)
    return torch.where(target > 0, step * lam, torch.zeros_like(lam)).reshape(shape)
