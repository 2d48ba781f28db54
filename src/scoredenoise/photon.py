"""The noise level function from repeated frames of a static scene (photon transfer): each
pixel's temporal mean and variance, free of the scene's structure (a calibration series)."""

from __future__ import annotations

import math

import numpy as np

from ._measure import (  # noqa: F401 (measurement primitives)
    _MIN_BIN,
    _clip_limits,
    _detected_limits,
    _frame,
    _level_edges,
    _reached_limits,
)
from ._progress import ProgressFn
from ._progress import report as _report
from .nlf import (  # noqa: F401
    _MAX_AT_LIMIT,
    NoiseLevelFunction,
    _binned,
)

__all__ = ["photon_transfer"]


def photon_transfer(stack, *, axis: int = 0, clip="auto", n_bins: int = 40,
                    differences: bool = True, progress: ProgressFn | None = None
                    ) -> NoiseLevelFunction:
    """Noise level function from repeated frames of a static scene (photon transfer).

    Each pixel's temporal mean and temporal noise variance over the frames along ``axis`` are
    grouped by mean level. Near a clipping limit they are those of the clipped data, which the
    fit models (``censored``, as :func:`noise_level_function`); level sets with half or more
    of their values at a limit are not used. Frames are read one at a time, so a dask or zarr
    stack larger than memory works.

    Parameters
    ----------
    stack : array_like
        Repeated frames of one static scene (numpy, dask or zarr).
    axis : int
        The frames axis.
    clip : "auto", None or (low, high)
        Clipping limits (``"auto"``: an integer dtype's limits, and values the first frame
        piles up at).
    n_bins : int
        Number of level sets.
    differences : bool
        Measure the variance from differences of consecutive frames,
        ``mean((y[t+1] - y[t])**2) / 2`` (as EMVA 1288 does with frame pairs): slow drift of
        the illumination, bleaching or focus between frames cancels. ``False``: the plain
        temporal variance (``ddof=1``), which counts such drift as noise.
    progress : callable, optional
        ``progress(done, total)`` after each frame read; returning False stops with
        :class:`scoredenoise.Cancelled`.

    Examples
    --------
    >>> import numpy as np
    >>> from scoredenoise.noise import get_noise_model
    >>> cam = get_noise_model("poisson-gaussian", gain=2.0, offset=100.0, read_noise=3.0)
    >>> x = np.tile(np.linspace(0, 400, 128), (128, 1))
    >>> frames = np.stack([cam.sample(x, rng=i) for i in range(20)])
    >>> slope, intercept, _ = photon_transfer(frames).affine_fit()
    >>> round(slope, 1)
    2.0
    """
    n = np.shape(stack)[axis]
    if n < 3:
        raise ValueError(f"photon transfer needs at least 3 frames along axis {axis}, got {n}")
    clip_lim = _clip_limits(stack, clip)
    s1 = s2 = s3 = sd2 = None
    at_limit = None
    reached = [False, False]
    ref = prev = None
    _report(progress, 0, n)
    for t in range(n):
        f = _frame(stack, axis, t)
        if ref is None:
            ref = f  # shift for numerically stable sums
            s1, s2, s3, sd2 = (np.zeros_like(f) for _ in range(4))
            at_limit = np.zeros(f.shape)
            if isinstance(clip, str):
                finite = f[np.isfinite(f)]
                clip_lim = _detected_limits(finite, clip_lim)
        else:
            sd2 += (f - prev) ** 2
        u = f - ref
        s1 += u
        s2 += u * u
        s3 += u * u * u
        prev = f
        if clip_lim is not None:
            low, high = f <= clip_lim[0], f >= clip_lim[1]
            reached = [reached[0] or bool(low.any()), reached[1] or bool(high.any())]
            at_limit += low | high
        _report(progress, t + 1, n)
    mean = ref + s1 / n
    # unbiased third cumulant (k-statistic) of each pixel's series; a slow drift adds to it
    # (its covariance with the variance) and to the variance's level alike: 20 % over 50
    # frames left the ratio of photon counts at 1.00-1.08 (docs/noise-estimation.md)
    c3 = s3 - 3 * s1 * s2 / n + 2 * s1 ** 3 / n ** 2
    k3 = c3 * n / ((n - 1) * (n - 2))
    var = sd2 / (2 * (n - 1)) if differences else (s2 - s1 ** 2 / n) / (n - 1)
    ok = np.isfinite(mean) & np.isfinite(var)  # a pixel missing in a frame is left out
    if ok.sum() < 4 * _MIN_BIN:
        raise ValueError(f"only {int(ok.sum())} pixels have a value in every frame; photon "
                         f"transfer needs at least {4 * _MIN_BIN}")
    mu, v, k3, lim = mean[ok], var[ok], k3[ok], at_limit[ok]
    edges = _level_edges(mu, n_bins)
    block = np.arange(mu.size)  # pixel time series are independent
    # near a reached limit the moments are those of the clipped data (fitted as such)
    clip_lim = _reached_limits(clip_lim, reached)
    M, V, SE, N, F = _binned(mu, mu, v, block, edges, at_limit=lim / n)
    usable = F < _MAX_AT_LIMIT
    M, V, SE, N = M[usable], V[usable], SE[usable], N[usable]
    if M.size < 2:
        raise ValueError("fewer than two usable intensity levels: the frames are too flat or "
                         "too clipped for photon transfer")
    # the variance of the variance estimate for Gaussian noise, per pixel: 2 var^2 / (n - 1)
    # for the sample variance; (3m - 1) var^2 / m^2 for the mean of m = n - 1 squared
    # differences (neighbouring differences share a frame)
    m_ = n - 1
    rel = math.sqrt((3 * m_ - 1) / m_ ** 2) if differences else math.sqrt(2.0 / (n - 1))
    SE = np.maximum(SE, V * rel / np.sqrt(N))
    third = _third_cumulants(mu[lim == 0], k3[lim == 0], edges)
    return NoiseLevelFunction(M, V, SE, N, float(np.quantile(mu, 0.01)), "photon-transfer",
                              clip_lim, fraction_used=float(ok.mean()),
                              censored=clip_lim is not None, **third)


def _third_cumulants(mu, k3, edges) -> dict:
    """Per level set (``edges``): mean level, mean third cumulant and its standard error
    (pixels are independent: the spread of their k-statistics), as NoiseLevelFunction's
    ``third_*`` fields; none (an empty dict) with fewer than three usable sets."""
    idx = np.clip(np.searchsorted(edges, mu, side="right") - 1, 0, len(edges) - 2)
    nb = len(edges) - 1
    n = np.bincount(idx, minlength=nb).astype(np.float64)
    good = n >= _MIN_BIN
    m = np.bincount(idx, mu, minlength=nb) / np.maximum(n, 1)
    t = np.bincount(idx, k3, minlength=nb) / np.maximum(n, 1)
    sq = np.bincount(idx, k3 * k3, minlength=nb) / np.maximum(n, 1)
    se = np.sqrt(np.maximum(sq - t * t, 0.0) / np.maximum(n - 1, 1))
    good &= se > 0
    if good.sum() < 3:
        return {}
    return {"third_mean": m[good], "third": t[good], "third_stderr": se[good]}
