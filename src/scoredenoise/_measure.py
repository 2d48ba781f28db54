"""What the noise estimators measure, below both of them (:mod:`scoredenoise.estimate` and
:mod:`scoredenoise.estimate_kernel`): high-pass responses and their calibration, robust
variances, clipping limits, and the planes and tiles sampled from an image."""

from __future__ import annotations

import itertools
import math

import numpy as np

from . import _axes
from ._progress import report as _report

#: half-width of the window of the high-pass responses (7x7)
_HALF = 3

#: ring of the grouping level: just outside the window (shares no pixel with it)
_LEVEL_RING = (_HALF + 1, _HALF + 3)

#: the texture test's annulus of responses, whose windows share no pixel with the centre's
_TEXTURE_RING = (2 * _HALF + 1, 2 * _HALF + 3)

_MARGIN = max(_LEVEL_RING[1], _TEXTURE_RING[1] + _HALF) + 1

_MIN_BIN = 200

def _high_pass_basis(half: int, degree: int) -> tuple[np.ndarray, ...]:
    """Orthonormal kernels on a ``2 half + 1`` square window spanning what is left of it once
    every polynomial in x and y of total degree up to ``degree`` is projected out: the mean of
    their squared responses estimates the noise variance, blind to such polynomials in the
    clean image. (On a window of n points a side, x^n is a combination of lower powers: the
    span is found by its singular values.)"""
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    polys = np.stack([(yy ** i * xx ** j).ravel()
                      for i in range(degree + 1) for j in range(degree + 1 - i)], 1)
    u, s, _ = np.linalg.svd(polys, full_matrices=False)
    q = u[:, s > 1e-9 * s[0]]
    w, v = np.linalg.eigh(np.eye(len(polys)) - q @ q.T)
    size = 2 * half + 1
    return tuple(v[:, i].reshape(size, size) for i in range(len(w)) if w[i] > 0.5)

def _cross_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Full 2-D cross-correlation of two small kernels, ``sum_x a(x + d) b(x)`` at every lag d
    (centre: lag 0), by FFT (numpy only: these run at import, scipy.signal is slow to load)."""
    shape = tuple(p + q - 1 for p, q in zip(a.shape, b.shape))
    c = np.fft.irfft2(np.fft.rfft2(a, shape) * np.conj(np.fft.rfft2(b, shape)), shape)
    return np.roll(c, tuple(q - 1 for q in b.shape), axis=(0, 1))

def _degrees_of_freedom(basis) -> float:
    """Independent noise samples per pixel that the mean of ``basis``'s squared responses is
    worth, on white noise (1 for an oracle that sees the noise itself): the variance of the
    mean over n pixels is 2 var^2 / (n dof)."""
    s = sum(np.sum(_cross_correlation(a, b) ** 2) for a in basis for b in basis)
    return float(len(basis) ** 2 / s)

#: the high-pass: the 15 degrees of freedom of a 7x7 window left after fitting every
#: polynomial of degree <= 7. Worth 0.47 independent samples per pixel (the 3x3 window minus
#: a quadratic: 0.51; the compact 3x3 [[1,-2,1],[-2,4,-2],[1,-2,1]]: 0.26), and as blind to
#: the structure of real images as the compact kernel: on the FMD averages at 400 e-, the
#: clean image leaks 0.02-0.18 % of the noise variance into it, against 0.08-1.6 % for the
#: 3x3 quadratic (docs/noise-estimation.md)
_HIGH_PASS = _high_pass_basis(_HALF, 7)

#: the weights with which the responses see each pixel's noise variance: the level of a
#: measurement is the data's mean with these weights (sum 1)
_FOOTPRINT = sum(k * k for k in _HIGH_PASS) / len(_HIGH_PASS)

_DOF = _degrees_of_freedom(_HIGH_PASS)

def _white_weights(basis, lags) -> np.ndarray:
    """Weights over the squared responses of ``basis`` whose weighted sum estimates the noise
    variance whatever the noise correlation at ``lags`` (and its mirror images).

    Noise correlated with coefficient rho at lag d changes the mean square of a unit kernel h
    by 2 rho sigma^2 A_h(d), A_h its autocorrelation. The 15 responses see each lag
    differently (their lag-1 autocorrelations range over -0.25 to -0.71), so regressing their
    mean squares on (1, 2 A_h(d) for each lag) separates the variance from the correlation:
    the weights are the intercept's row of the least-squares solution. Every response is
    blind to structure, so structure cannot pass for correlation.
    """
    rows = []
    for k in basis:
        a = _cross_correlation(k, k)
        c = a.shape[0] // 2
        rows.append([1.0] + [2.0 * a[c + dy, c + dx] for dy, dx in lags])
    return np.linalg.pinv(np.asarray(rows))[0]

#: lags of the correlation models: along the rows and the columns (scanners, cameras), and
#: up to two pixels and the diagonals (strong correlations, e.g. resampled data)
_LAGS_NEAR = ((0, 1), (1, 0))

_LAGS_FAR = ((0, 1), (1, 0), (1, 1), (1, -1), (0, 2), (2, 0))

_WHITE_NEAR = _white_weights(_HIGH_PASS, _LAGS_NEAR)

_WHITE_FAR = _white_weights(_HIGH_PASS, _LAGS_FAR)

def _high_pass_energy(y: np.ndarray) -> np.ndarray:
    """Mean squared response of the kernels of ``_HIGH_PASS``, and the two correlation-free
    variances (:func:`_white_weights`, near and far lags), stacked: shape (3, ...)."""
    from scipy import ndimage as ndi

    out = np.zeros((3,) + y.shape)
    for k, wn, wf in zip(_HIGH_PASS, _WHITE_NEAR, _WHITE_FAR):
        r2 = ndi.correlate(y, k, mode="reflect") ** 2
        out[0] += r2
        out[1] += wn * r2
        out[2] += wf * r2
    out[0] /= len(_HIGH_PASS)
    return out

def _ring_average(parity: int = 1, ring: tuple = _LEVEL_RING) -> np.ndarray:
    """Averaging weights on one checkerboard parity of a square ring (Chebyshev radii
    ``ring``): the grouping level, which shares no pixel with the high-pass window."""
    r0, r1 = ring
    yy, xx = np.mgrid[-r1:r1 + 1, -r1:r1 + 1]
    rr = np.maximum(abs(yy), abs(xx))
    k = ((rr >= r0) & (rr <= r1) & ((yy + xx) % 2 == parity)).astype(np.float64)
    return k / k.sum()

def _clip_limits(image, clip) -> tuple | None:
    """Clipping levels of the data: ``"auto"`` = the integer dtype's limits (to which
    :func:`_detected_limits` adds those the data show)."""
    if clip is None or clip is False:
        return None
    if isinstance(clip, str):
        if clip != "auto":
            raise ValueError(f"clip must be 'auto', None or (low, high), got {clip!r}")
        dt = np.dtype(getattr(image, "dtype", np.float64))
        if dt.kind in "ui":
            info = np.iinfo(dt)
            return float(info.min), float(info.max)
        return None
    lo, hi = clip
    return (-math.inf if lo is None else float(lo), math.inf if hi is None else float(hi))

def _reached_limits(limits: tuple | None, reached) -> tuple | None:
    """The clipping limits that the data reach (an unreached side infinite), or None."""
    if limits is None or not any(reached):
        return None
    return (limits[0] if reached[0] else -math.inf, limits[1] if reached[1] else math.inf)

#: a value is a clipping limit of the data when it is their lowest (highest), held by at
#: least _SPIKE_MIN pixels and by more than _SPIKE_RATIO times as many as the next value
_SPIKE_MIN = 20

_SPIKE_RATIO = 2.0

def _detected_limits(values: np.ndarray, limits: tuple | None) -> tuple | None:
    """``limits`` narrowed to the limits that the data themselves show.

    Clipped data pile up at the limit: a saturating 12-bit camera in a 16-bit file at 4095,
    a detector whose offset was set too low at its lowest value, a zero fill. Noise spreads
    the data thinly over their extremes otherwise (one pixel holds the highest value of
    continuous data; the tail of integer data falls off towards it).
    """
    lo, hi = limits if limits is not None else (-math.inf, math.inf)
    if values.size:
        for low in (True, False):
            v = float(values.min() if low else values.max())
            count = int(np.count_nonzero(values == v))
            if count < _SPIKE_MIN:
                continue
            rest = values[values > v] if low else values[values < v]
            if rest.size == 0:  # one value everywhere: no noise to measure anyway
                continue
            nxt = float(rest.min() if low else rest.max())
            if count > _SPIKE_RATIO * np.count_nonzero(values == nxt):
                lo, hi = (max(lo, v), hi) if low else (lo, min(hi, v))
    return None if math.isinf(lo) and math.isinf(hi) else (lo, hi)

def _plane_statistics(plane: np.ndarray):
    """Mean squared high-pass response ``d2``, the correlation-free variances ``white`` (near
    and far lags, stacked), grouping level ``g``, the level ``m`` of ``d2``
    (footprint-weighted mean), the usable mask, and the plane as float64.

    Pixels within ``_MARGIN`` of the plane's edge or of a missing value (NaN, inf) are not
    usable: their statistics would include values that are not there.

    Pixels near clipped ones stay usable: leaving them out would select neighbourhoods whose
    noise happened to stay inside the limits, which biases both the level and the variance.
    Their statistics are those of the clipped data, which the fit models (``censored``).
    """
    from scipy import ndimage as ndi

    y = np.asarray(plane, dtype=np.float64)
    if min(y.shape) < 2 * _MARGIN + 4:
        raise ValueError(f"each plane must be at least {2 * _MARGIN + 4} pixels on a side to "
                         f"estimate noise, got {y.shape}")
    missing = ~np.isfinite(y)
    if missing.any():  # any stand-in: none of their neighbours is used
        y = np.where(missing, np.median(y[~missing]) if not missing.all() else 0.0, y)
    d2, *white = _high_pass_energy(y)
    g = ndi.correlate(y, _ring_average(), mode="reflect")
    m = ndi.correlate(y, _FOOTPRINT, mode="reflect")
    ok = np.zeros(y.shape, bool)
    ok[_MARGIN:-_MARGIN, _MARGIN:-_MARGIN] = True
    if missing.any():
        ok &= ~ndi.maximum_filter(missing, size=2 * _MARGIN + 1)
        y = np.where(missing, np.nan, y)
    return d2, np.stack(white), g, m, ok, y

_QUANTILE = 0.25

#: the jackknife's groups: square blocks, assigned by position modulo this many a side
#: (every group spans the whole image, so a replicate keeps its content)
_JACKKNIFE_SIDE = 4

#: side of those blocks: the kernel estimate's, and the noise level function's at most
#: (smaller planes: as large as gives every group two blocks a side, and at least 8;
#: groups that a small plane leaves empty make no replicate). Groups
#: are independent only where the statistics of neighbouring blocks share no noise; the
#: responses of pixels up to 6 apart do, so a block's border correlates with its
#: neighbours' (other groups): on 512x512, 40 paired draws (benchmarks/noise.py --parts 5
#: --calibration-size 512), the spread was 1.10-1.12x the jackknife with 16-pixel blocks,
#: 1.00-1.02x with 32
_JACKKNIFE_BLOCK = 32

#: the pixels measured by default (about 70 bytes each are held), and the least allowed
_MAX_PIXELS = 2 ** 23

_MIN_PIXELS = 2 ** 16

#: side of the windows measured in a plane larger than ``max_pixels``
_WINDOW = 1024

def _surroundings(d2: np.ndarray) -> np.ndarray:
    """Mean of ``d2`` over the annulus ``_TEXTURE_RING`` (Chebyshev distance) around each pixel:
    the responses there share no pixel with the centre's window, so a test on it selects
    pixels independently of their own noise."""
    from scipy import ndimage as ndi

    a, b = 2 * _TEXTURE_RING[0] - 1, 2 * _TEXTURE_RING[1] + 1
    return (ndi.uniform_filter(d2, b, mode="reflect") * b * b
            - ndi.uniform_filter(d2, a, mode="reflect") * a * a) / (b * b - a * a)

def _calibration() -> dict:
    """The constants of :func:`_measure_calibration` at its defaults (16 planes of 1024^2).

    Stored, not measured at run time: a single 512^2 sample is off by about 0.5 % in each
    constant. ``tests/test_estimate.py`` checks them against a fresh measurement.
    """
    return dict(_CALIBRATION)

_CALIBRATION = {"quantile": 0.9295137716137052, "threshold": 1.2002759588271257}

def _level_edges(levels: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin edges: quantiles (dense where pixels are) merged with even spacing (the range)."""
    lo, hi = float(levels.min()), float(levels.max())
    if hi <= lo:
        return np.array([lo, hi + 1e-9])
    edges = np.union1d(np.quantile(levels, np.linspace(0, 1, n_bins + 1)),
                       np.linspace(lo, hi, n_bins + 1))
    counts = np.histogram(levels, edges)[0]
    keep = [edges[0]]
    acc = 0
    for c, e in zip(counts, edges[1:]):
        acc += c
        if acc >= _MIN_BIN:
            keep.append(e)
            acc = 0
    if acc and len(keep) > 1:
        keep[-1] = edges[-1]
    elif acc:
        keep.append(edges[-1])
    keep[-1] = hi + 1e-9 * max(1.0, abs(hi))
    return np.asarray(keep)

def _planes(image, axes):
    """Iterate over 2-D (Y, X) planes of ``image`` (numpy, dask or zarr-backed)."""
    ndim = len(np.shape(image))
    axes = _axes.check_axes(axes, ndim, 2)
    if "C" in axes and np.shape(image)[axes.index("C")] > 1:
        raise ValueError(
            f"image has {np.shape(image)[axes.index('C')]} channels (axes {axes!r}); noise "
            f"differs between channels: measure each channel separately (one channel's "
            f"plane and axes without C), or use estimate_noise, which returns one estimate "
            f"per channel")
    if "S" in axes and np.shape(image)[axes.index("S")] > 1 and axes[-1] == "S":
        raise ValueError(f"image has samples last (axes {axes!r}): pass one colour channel")
    yx = [axes.index("Y"), axes.index("X")]
    lead = [i for i in range(ndim) if i not in yx]
    shape = np.shape(image)
    n_planes = int(np.prod([shape[i] for i in lead])) if lead else 1
    return axes, yx, lead, n_planes

def _windows(plane_shape, n_planes, max_planes, max_pixels):
    """The planes and (Y, X) windows that :func:`noise_level_function` measures.

    Evenly spaced planes, as many as ``max_pixels`` holds (at least one, at most
    ``max_planes``); a plane larger than ``max_pixels`` is measured in tiles of up to
    ``_WINDOW`` pixels a side spread evenly over it (its darkest and brightest regions may lie
    anywhere), the middle plane of a stack of such planes.
    """
    h, w = plane_shape
    if h * w <= max_pixels:
        k = min(n_planes, max_planes, max_pixels // (h * w))
        return [(int(p), slice(0, h), slice(0, w)) for p in
                np.unique(np.linspace(0, n_planes - 1, k).round().astype(int))]
    side = min(_WINDOW, math.isqrt(max_pixels))
    th, tw = min(h, side), min(w, side)
    rows, cols = h // th, w // tw

    def origin(i, n, size, total):  # n tiles side by side, the remainder spread as gaps
        return i * size + (i * (total - n * size)) // max(n - 1, 1)

    count = max_pixels // (th * tw)
    if count == 1:  # one tile: the middle of the plane
        corners = [((h - th) // 2, (w - tw) // 2)]
    else:
        corners = [(origin(t // cols, rows, th, h), origin(t % cols, cols, tw, w)) for t in
                   np.unique(np.linspace(0, rows * cols - 1, count).round().astype(int))]
    return [(n_planes // 2, slice(int(r0), int(r0) + th), slice(int(c0), int(c0) + tw))
            for r0, c0 in corners]

def _read(block, dtype=None) -> np.ndarray:
    """A block of a numpy, zarr or dask array, in memory. Dask reads it in this thread: the
    default scheduler would ship the graph to a dask.distributed cluster where one is active
    (on a worker too), and a file-backed graph need not travel."""
    if hasattr(block, "dask") and hasattr(block, "compute"):
        block = block.compute(scheduler="synchronous")
    return np.asarray(block, dtype=dtype)

def _frame(stack, axis: int, t: int) -> np.ndarray:
    """Frame ``t`` along ``axis``, as float64. Basic indexing reads one frame from numpy,
    dask and zarr alike (np.take would load a whole zarr array)."""
    return _read(stack[(slice(None),) * (axis % len(np.shape(stack))) + (t,)], np.float64)

def _measured_planes(image, yx, lead, n_planes, max_planes, max_pixels, progress=None):
    """The 2-D (Y, X) planes or tiles that :func:`_windows` picks, read one at a time;
    ``progress(done, total)`` after each has been used (False: :class:`Cancelled`)."""
    shape = np.shape(image)
    lead_shape = [shape[i] for i in lead]
    windows = _windows((shape[yx[0]], shape[yx[1]]), n_planes, max_planes, max_pixels)
    _report(progress, 0, len(windows))
    for done, (p, rows_win, cols_win) in enumerate(windows, 1):
        index = [slice(None)] * len(shape)
        for ax, i in zip(lead, np.unravel_index(p, lead_shape) if lead else ()):
            index[ax] = int(i)
        index[yx[0]], index[yx[1]] = rows_win, cols_win
        plane = _read(image[tuple(index)])
        yield plane.T if yx[0] > yx[1] else plane
        _report(progress, done, len(windows))

def _robust_variance(g: np.ndarray, lv: np.ndarray, n_bins: int) -> np.ndarray:
    """A texture-robust noise variance for each pixel: in level sets of the grouping level
    ``g``, a low quantile of the surroundings' energy ``lv`` (textured pixels only raise it),
    scaled by that quantile's value for pure noise, interpolated over the levels. Grouped by
    ``g``, the test shares no pixel with the centre's window."""
    cal = _calibration()
    edges = _level_edges(g, n_bins)
    idx = np.clip(np.searchsorted(edges, g, side="right") - 1, 0, len(edges) - 2)
    order = np.argsort(idx, kind="stable")
    cuts = np.searchsorted(idx[order], np.arange(len(edges)))
    lev, rob = [], []
    for lo, hi in itertools.pairwise(cuts):
        if hi - lo >= 20:
            sel = order[lo:hi]
            lev.append(g[sel].mean())
            rob.append(np.quantile(lv[sel], _QUANTILE) / cal["quantile"])
    lev, rob = np.asarray(lev), np.asarray(rob)
    o = np.argsort(lev)
    return np.maximum(np.interp(g, lev[o], rob[o]), 1e-12)


def _correlation_factor(kernel: np.ndarray, basis) -> float:
    """How a known noise correlation kernel scales the variance seen through ``basis``."""
    from scipy.signal import convolve2d

    k = np.asarray(kernel, dtype=np.float64)
    if k.size == 1:  # a single tap: white noise, exactly
        return 1.0
    return float(np.mean([np.sum(convolve2d(k, h) ** 2) for h in basis]) / np.sum(k * k))


def _chi2_scale(resid, se, n_params) -> float:
    dof = max(len(resid) - n_params, 1)
    return max(1.0, float(np.sum((resid / se) ** 2)) / dof)
