"""The noise level function (NLF): the noise's variance against the signal's level,
measured from one noisy image or stack (:func:`noise_level_function`) or from repeated frames
of a static scene (:func:`photon_transfer`); what :mod:`scoredenoise.estimate` fits the noise
models to. How the measurement works: the module docstring of :mod:`scoredenoise.estimate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import _measure
from ._measure import (
    _DOF,
    _HIGH_PASS,
    _JACKKNIFE_SIDE,
    _MARGIN,
    _MAX_PIXELS,
    _MIN_BIN,
    _MIN_PIXELS,
    _QUANTILE,
    _calibration,
    _chi2_scale,
    _clip_limits,
    _correlation_factor,
    _detected_limits,
    _level_edges,
    _measured_planes,
    _plane_statistics,
    _planes,
    _reached_limits,
    _robust_variance,
    _surroundings,
)
from ._progress import ProgressFn
from .noise._clipping import normal_clipped_moments as _censored_moments

__all__ = ["NoiseLevelFunction", "noise_level_function", "MAX_PIXELS"]

#: at most this many pixels of an image are measured by default (``max_pixels``)
MAX_PIXELS = _MAX_PIXELS


#: reweighting steps of the affine fit (weights from the fitted line's variances)
_IRLS_STEPS = 3


@dataclass
class NoiseLevelFunction:
    """Noise variance against mean level, one row per level set.

    Attributes
    ----------
    mean, variance, stderr, count : numpy.ndarray
        Level of each set (mean of the data there), noise variance, its standard error, and
        the number of pixels (or of pixel time series, for photon transfer).
    black_level : float
        The darkest level at which the noise was measured (the lowest 1 % of used pixels).
    method : str
        ``"single-image"`` or ``"photon-transfer"``.
    clip : tuple of float or None
        The clipping limits that the data reach, if any (an infinite side is not reached).
    censored : bool
        True when level sets near a reached limit were kept: their mean and variance are those
        of the clipped data, ``clip(y, low, high)``, and fits compare them with the clipped
        moments of the model (Foi et al. 2008, section 4) instead of leaving them out.
    fraction_used : float
        Fraction of the pixels that were smooth enough to be used.
    correlation_factor : float
        Variance of the compact high-pass filter relative to the correlation-free estimate
        (1 for white noise; below 1 where neighbouring noise values are correlated). The
        variances are divided by it.
    correlation_stderr : float
        Standard error of the measured factor (0 when it is 1, or computed from a kernel); a
        common scale of all variances, propagated into the parameters' standard errors.
    correlation_from_kernel : bool
        True when the factor was computed from a model's correlation kernel: it then holds
        for the noise that goes through the kernel only, and the model's white part is seen
        divided by it (:meth:`model_variance`).
    """

    mean: np.ndarray
    variance: np.ndarray
    stderr: np.ndarray
    count: np.ndarray
    black_level: float
    method: str
    clip: tuple | None = None
    fraction_used: float = 1.0
    correlation_factor: float = 1.0
    correlation_stderr: float = 0.0
    correlation_from_kernel: bool = False
    censored: bool = False
    #: the correlation ratio in quarters of the levels (darkest first) when they disagreed by
    #: more than a noise correlation can (``_INCONSISTENT``): taken as fine texture, and no
    #: correction applied; empty otherwise
    correlation_rejected: tuple = ()
    #: the noise's third cumulant (photon transfer only; None for the single-image method,
    #: where the scene's own structure skews the residuals): per level set of its own, the
    #: mean level, the third cumulant and its standard error, from the pixels that never
    #: reach a clipping limit. See :meth:`third_cumulant_ratio`.
    third_mean: np.ndarray | None = None
    third: np.ndarray | None = None
    third_stderr: np.ndarray | None = None
    #: leave-one-group-out measurements of the same image (single-image method), for the
    #: jackknife standard errors of :func:`estimate_noise`
    replicates: list = field(default_factory=list, repr=False, compare=False)
    #: for a stack, the measurement on the planes the replicates leave groups out of
    replicate_base: NoiseLevelFunction | None = field(default=None, repr=False,
                                                         compare=False)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "variance": self.variance.tolist(),
                "stderr": self.stderr.tolist(), "count": self.count.tolist(),
                "black_level": self.black_level, "method": self.method,
                "clip": list(self.clip) if self.clip else None,
                "fraction_used": self.fraction_used,
                "correlation_factor": self.correlation_factor,
                "correlation_stderr": self.correlation_stderr,
                "correlation_from_kernel": self.correlation_from_kernel,
                "censored": self.censored,
                "correlation_rejected": list(self.correlation_rejected),
                **({"third_mean": self.third_mean.tolist(), "third": self.third.tolist(),
                    "third_stderr": self.third_stderr.tolist()}
                   if self.third is not None else {})}

    def third_cumulant_ratio(self) -> tuple[float, float] | None:
        """How skewed the noise is against photon counting: the slope of the third cumulant
        against the mean, divided by the square of the variance's slope, with its standard
        error; None without a third-cumulant measurement (:attr:`third`).

        Photon counts that each add a fixed step (``poisson-gaussian``, any read noise: its
        third cumulant is 0) give 1. Counts whose pulses have random heights give more:
        ``(1 + 2/shape) / (1 + 1/shape)`` for ``emccd``'s Gamma pulses, 1.5 for an EMCCD's
        exponential ones. Measured on FMD's confocal frames (photomultiplier): 1.26-1.28.

        Examples
        --------
        >>> import numpy as np
        >>> from scoredenoise import photon_transfer
        >>> from scoredenoise.noise import Emccd
        >>> det = Emccd(gain=4.0, shape=1.0, offset=10.0, read_noise=2.0)
        >>> x = np.tile(np.linspace(0, 400, 256), (64, 1))
        >>> frames = np.stack([det.sample(x, rng=i) for i in range(30)])
        >>> ratio, se = photon_transfer(frames).third_cumulant_ratio()
        >>> abs(ratio - 1.5) < 4 * se
        True
        """
        if self.third is None or len(self.third) < 3:
            return None
        slope, _, cov = self.affine_fit()
        if slope <= 0:
            return None
        X = np.stack([self.third_mean, np.ones_like(self.third_mean)], 1)
        w = 1.0 / np.square(self.third_stderr)
        A = X.T @ (X * w[:, None])
        coef = np.linalg.solve(A, X.T @ (w * self.third))
        cov3 = np.linalg.inv(A) * _chi2_scale(self.third - X @ coef, self.third_stderr, 2)
        ratio = float(coef[0]) / slope ** 2
        se = math.hypot(math.sqrt(max(cov3[0, 0], 0.0)) / slope ** 2,
                        2 * ratio * math.sqrt(max(cov[0, 0], 0.0)) / slope)
        return ratio, se

    def expected_variance(self, noise_level, levels=None, moments=None) -> np.ndarray:
        """The variance this measurement should show for a model's ``noise_level(mean)``.

        ``noise_level`` maps the mean of the unclipped data to its variance (e.g.
        ``model.noise_level``). Where the levels are censored (see ``censored``) the result is
        the variance of the clipped data at the clipped mean ``levels``, from
        ``moments(mean, low, high)`` (e.g. ``model.clipped_moments``; default: the normal
        form); elsewhere it is ``noise_level(levels)``. ``levels`` defaults to ``self.mean``.
        """
        levels = self.mean if levels is None else np.asarray(levels, dtype=np.float64)
        if not self.censored or self.clip is None:
            return np.asarray(noise_level(levels), dtype=np.float64)
        return _censored_variance(noise_level, levels, *self.clip, moments=moments)

    def model_variance(self, noise_model, levels=None) -> np.ndarray:
        """The variance this measurement should show for a noise model.

        :meth:`expected_variance` of the model's ``noise_level``, where a correlation factor
        computed from the model's kernel (``correlation_from_kernel``) divided the white part
        of the noise (``noise_model.white_noise_level``) too: that part is independent between
        pixels, so the measurement sees it as ``white / correlation_factor``.
        """
        extra = 1.0 / self.correlation_factor - 1.0 if self.correlation_from_kernel else 0.0
        if extra == 0.0:  # clipped data: the model's own clipped moments
            return self.expected_variance(noise_model.noise_level, levels,
                                          moments=noise_model.clipped_moments)
        return self.expected_variance(
            lambda m: noise_model.noise_level(m) + extra * noise_model.white_noise_level(m),
            levels)

    def affine_fit(self) -> tuple[float, float, np.ndarray]:
        """Weighted straight line ``variance = slope * mean + intercept`` and its covariance.

        Censored level sets (see ``censored``) are fitted with the clipped moments of the line.
        """
        X = np.stack([self.mean, np.ones_like(self.mean)], 1)
        se = self.stderr
        w = 1.0 / np.square(se)
        if self.censored:  # start from the level sets that the clipping hardly touches
            sd = np.sqrt(np.maximum(self.variance, 0))
            far = (self.mean - 3 * sd > self.clip[0]) & (self.mean + 3 * sd < self.clip[1])
            if far.sum() >= 3:
                w = np.where(far, w, 0.0)
        A = X.T @ (X * w[:, None])
        coef = np.linalg.solve(A, X.T @ (w * self.variance))
        if not self.censored:
            # iteratively reweighted: a level set's measured standard error scales with its
            # measured variance, so one whose variance came out low by chance would weigh
            # more and pull the line down (gain -2 to -3 % at 100 e-); the errors are
            # rescaled to the fitted line's variances (weights from the model, not the data)
            for _ in range(_IRLS_STEPS):
                fit = X @ coef
                ok = (fit > 0) & (self.variance > 0)
                if not ok.all():
                    break
                se = self.stderr * np.clip(fit / self.variance, 0.25, 4.0)
                w = 1.0 / np.square(se)
                A = X.T @ (X * w[:, None])
                coef = np.linalg.solve(A, X.T @ (w * self.variance))
            cov = np.linalg.inv(A) * _chi2_scale(self.variance - X @ coef, se, 2)
            return float(coef[0]), float(coef[1]), cov
        from scipy.optimize import least_squares

        def resid(c):
            return (self.variance - self.expected_variance(lambda m: c[0] * m + c[1])) \
                / self.stderr

        r = least_squares(resid, coef, x_scale="jac")
        J = r.jac
        cov = np.linalg.pinv(J.T @ J) * _chi2_scale(r.fun, np.ones_like(r.fun), 2)
        return float(r.x[0]), float(r.x[1]), cov


def _censored_variance(noise_level, levels, lo, hi, n_grid: int = 4096, moments=None):
    """Variance of clipped data at clipped mean ``levels`` for a variance function of the mean.

    ``moments(mean, lo, hi)`` gives the clipped mean and variance at the unclipped mean (a
    model's ``clipped_moments``); default: the normal form with variance ``noise_level``. The
    clipped mean grows monotonically with the true mean; it is inverted on a grid.
    """
    levels = np.asarray(levels, dtype=np.float64)
    v_at = np.maximum(np.asarray(noise_level(levels), dtype=np.float64), 0.0)
    spread = 8.0 * math.sqrt(float(np.max(v_at)) + 1e-12)
    grid = np.linspace(float(levels.min()) - spread, float(levels.max()) + spread, n_grid)
    if moments is None:
        var = np.maximum(np.asarray(noise_level(grid), dtype=np.float64), 1e-12)
        m, v = _censored_moments(grid, var, lo, hi)
    else:
        m, v = moments(grid, lo, hi)
    m = np.maximum.accumulate(m)
    return np.interp(levels, m, v)


#: level sets with at least this fraction of pixels at a clipping limit are not used
_MAX_AT_LIMIT = 0.5


_KEEP = 0.97


#: standard errors by which the correlation ratio must differ from 1 to call the noise
#: correlated: calling white noise correlated costs as much as the factor is off, missing
#: FMD's weak scan-line correlation (factor 0.956, about 6 standard errors on a 512x512 frame)
#: costs about 4 %
_CORRELATED = 3.0


#: standard deviation of that ratio on white Gaussian noise, times the square root of the
#: pixels (measured on 8 simulated 512x512 planes); its standard error is never below it
_RATIO_SD = 3.5


#: below this ratio (strong correlation) the factor comes from the model with lags up to 2
#: and the diagonals (3x noisier, but a kernel like [[0,.1,0],[.1,.6,.1],[0,.1,0]] is 20 % off
#: with the near lags alone)
_STRONG = 0.8


#: a noise correlation scales the variance by the same factor at every level; the ratio is
#: measured in this many bands of levels (equal counts) and the correction rejected where
#: they disagree with chi-square (bands - 1 degrees of freedom) above ``_INCONSISTENT``
#: (p = 1e-6 for 3). Fine texture does that: a random field smoothed by 1 px, 600 ADU on a
#: 200-2000 ADU ramp, gave 0.64 / 0.76 / 0.83 / 0.85 (chi-square 223) and, applied, a gain
#: 2.8x too high; FMD's real correlation gives at most 22 over its 200 frames (mean 3.5)
_LEVEL_BANDS = 4


_INCONSISTENT = 30.66


#: planes of a stack the jackknife runs on (its cost grows with the pixels)
_JACKKNIFE_PLANES = 4


#: reduced chi-square above which the estimate says that the model does not fit (0.1-1.2
#: on the FMD frames and pairs and on Set12 with synthetic camera noise)
_POOR_FIT = 4.0


def _measure_calibration(planes: int = 16, size: int = 1024, seed: int = 1000) -> dict:
    """How the texture test's statistic behaves on pure white Gaussian noise of variance 1.

    ``quantile``: the ``_QUANTILE`` quantile of the surroundings' energy
    (:func:`_surroundings`); ``threshold``: its ``_KEEP`` quantile (pixels below are kept as
    smooth). The kept pixels need no correction: the test shares no pixel with their own
    window (``tests/test_estimate.py``). Measured on ``planes`` seeded images.
    """
    lvs = []
    for k in range(planes):
        y = np.random.default_rng(seed + k).normal(size=(size, size))
        d2, _, _, _, ok, _ = _plane_statistics(y)
        lvs.append(_surroundings(d2)[ok])
    lv = np.concatenate(lvs)
    return {"quantile": float(np.quantile(lv, _QUANTILE)),
            "threshold": float(np.quantile(lv, _KEEP))}


def _binned(level, mean, var_terms, block, edges, at_limit=None, dof=1.0):
    """Per level set: mean, variance (mean of ``var_terms``), a block-robust stderr, the count,
    and (with ``at_limit``) the fraction of pixels at a clipping limit. ``dof``: independent
    noise samples per term (the stderr is never below that of Gaussian noise)."""
    idx = np.clip(np.searchsorted(edges, level, side="right") - 1, 0, len(edges) - 2)
    nb = len(edges) - 1
    n = np.bincount(idx, minlength=nb).astype(np.float64)
    good = n >= max(_MIN_BIN // 4, 20)
    M = np.bincount(idx, mean, minlength=nb) / np.maximum(n, 1)
    # standard error of a ratio estimator over spatial blocks (the terms of neighbouring
    # pixels are correlated through shared pixels; blocks are nearly independent)
    n_blk = int(block.max()) + 1
    key = idx.astype(np.int64) * n_blk + block
    if nb * n_blk <= 1 << 25:  # dense block ids (the callers'): counting, no sort
        bn = np.bincount(key, minlength=nb * n_blk).astype(np.float64)
        inv, occupied = key, bn > 0
        bidx = np.repeat(np.arange(nb), n_blk)[occupied]
        bn = bn[occupied]
    else:
        uk, inv = np.unique(key, return_inverse=True)
        bn = np.bincount(inv).astype(np.float64)
        bidx, occupied = uk // n_blk, None
    V = np.bincount(idx, var_terms, minlength=nb) / np.maximum(n, 1)
    bs = np.bincount(inv, var_terms, minlength=len(occupied) if occupied is not None else 0)
    resid = (bs[occupied] if occupied is not None else bs) - V[bidx] * bn
    se = np.sqrt(np.bincount(bidx, resid ** 2, minlength=nb)) / np.maximum(n, 1)
    # never below the Gaussian-noise floor for this many pixels
    se = np.maximum(se, V * np.sqrt(2.0 / (dof * np.maximum(n, 1))))
    good &= (se > 0) & np.isfinite(se)
    if at_limit is None:
        return M[good], V[good], se[good], n[good]
    F = np.bincount(idx, at_limit.astype(np.float64), minlength=nb) / np.maximum(n, 1)
    return M[good], V[good], se[good], n[good], F[good]


def _part(progress: ProgressFn | None, k: int, parts: int) -> ProgressFn | None:
    """Progress of part ``k`` of ``parts`` equal parts (measurement passes over the same
    planes or frames, channels of one shape) as progress of the whole."""
    if progress is None:
        return None
    return lambda done, total: progress(k * total + done, parts * total)


def noise_level_function(image, *, axes: str | None = None, clip="auto", n_bins: int = 40,
                         max_planes: int = 32, max_pixels: int = _MAX_PIXELS,
                         kernel=None, progress: ProgressFn | None = None
                         ) -> NoiseLevelFunction:
    """Measure the noise variance against the mean level from one noisy image or stack.

    Parameters
    ----------
    image : array_like
        2-D image or stack (3-D, time-lapse): numpy, dask or zarr. Planes are read one at a
        time; at most ``max_planes`` evenly spaced planes are used.
    axes : str, optional
        Axes letters (TCZYXS); default ``"YX"``, ``"ZYX"``, ``"TZYX"`` by dimension.
    clip : "auto", None or (low, high)
        Clipping limits, whose nearby levels are fitted as clipped data; ``"auto"``: the limits
        of an integer dtype where the data reach them, and the lowest or highest value where
        the data pile up (a 12-bit camera saturating at 4095 in a 16-bit file, a zero fill).
        NaN and inf are missing values: no pixel within 13 of one is used.
    n_bins : int
        Number of level sets (before merging sets with too few pixels).
    max_planes : int
        At most this many evenly spaced planes of a stack are measured.
    max_pixels : int
        At most this many pixels are measured (each holds about 70 bytes during the
        measurement, 230-300 at its peak): fewer evenly spaced planes of a stack of large
        planes, and tiles (up to 1024x1024) spread evenly over a plane larger than this. The
        default, 8.4 million (32 planes of 512x512, two of 2048x2048), needs 2.3-2.9 GB
        (docs/benchmarks.md); the standard errors tell whether more pixels would help.
    kernel : array_like, optional
        A known 2-D correlation kernel of the noise (the A of a correlated model): the
        correlation correction is then computed from it instead of estimated.
    progress : callable, optional
        ``progress(done, total)`` after each plane or tile measured; returning False stops
        the measurement with :class:`scoredenoise.Cancelled`.

    Returns
    -------
    NoiseLevelFunction

    Examples
    --------
    >>> import numpy as np
    >>> from scoredenoise.noise import get_noise_model
    >>> x = np.tile(np.linspace(10, 200, 256), (256, 1))
    >>> y = get_noise_model("gaussian", sigma=5.0).sample(x, rng=0)
    >>> nlf = noise_level_function(y)
    >>> bool(np.allclose(nlf.variance, 25, rtol=0.15))
    True
    """
    if max_pixels < _MIN_PIXELS:
        raise ValueError(f"max_pixels must be >= {_MIN_PIXELS} (a 256x256 image), got "
                         f"{max_pixels}")
    if max_planes < 1:
        raise ValueError(f"max_planes must be >= 1, got {max_planes}")
    axes, yx, lead, n_planes = _planes(image, axes)
    clip_lim = _clip_limits(image, clip)

    d_all, wn_all, wf_all, g_all, m_all, lv_all, blk_all, y_all = [], [], [], [], [], [], [], []
    grp_all, pl_all, extremes = [], [], []
    n_total = n_blocks = 0
    for plane in _measured_planes(image, yx, lead, n_planes, max_planes, max_pixels,
                                  progress):
        d2p, white, g, m, ok, yp = _plane_statistics(plane)
        n_finite = int(np.isfinite(yp).sum())
        if n_finite:
            extremes.append((np.nanmin(yp), np.nanmax(yp)))
        n_total += n_finite
        rows, cols = np.nonzero(ok)
        lv = _surroundings(d2p)
        d_all.append(d2p[ok])
        g_all.append(g[ok]), m_all.append(m[ok])
        wn_all.append(white[0][ok]), wf_all.append(white[1][ok])
        lv_all.append(lv[ok])
        y_all.append(yp[ok])
        bw, bh = -(-ok.shape[1] // 16), -(-ok.shape[0] // 16)
        blk_all.append((rows // 16) * bw + cols // 16 + n_blocks)  # dense ids over planes
        n_blocks += bw * bh
        side = _JACKKNIFE_SIDE
        jb = int(np.clip((min(ok.shape) - 2 * _MARGIN) // (2 * side), 8,
                         _measure._JACKKNIFE_BLOCK))
        grp_all.append((((rows - _MARGIN) // jb) % side) * side
                       + ((cols - _MARGIN) // jb) % side)
        pl_all.append(np.full(rows.size, len(pl_all), dtype=np.int32))
    if not d_all:
        raise ValueError("image is empty")
    px = {k: np.concatenate(v) for k, v in {
        "g": g_all, "m": m_all, "d2": d_all, "wn": wn_all, "wf": wf_all, "lv": lv_all,
        "block": blk_all, "group": grp_all, "plane": pl_all}.items()}
    # clipping limits: given, the dtype's, and (clip="auto") those the data pile up at
    values = np.concatenate(y_all)
    del y_all
    if isinstance(clip, str):
        clip_lim = _detected_limits(values, clip_lim)
    reached = [False, False]
    if clip_lim is not None:
        px["lim"] = (values <= clip_lim[0]) | (values >= clip_lim[1])
        reached = [any(lo <= clip_lim[0] for lo, _ in extremes),
                   any(hi >= clip_lim[1] for _, hi in extremes)]
    else:
        px["lim"] = np.zeros(values.shape, bool)
    del values
    tail = {"n_total": n_total, "clip_lim": clip_lim, "reached": reached, "kernel": kernel,
            "n_bins": n_bins}
    nlf, fixed = _nlf_from_pixels(px, **tail)
    # leave-one-group-out replicates (groups of interleaved blocks), for standard errors
    # that include the data-dependent steps (texture test, correlation factor, level sets;
    # the robust level that the texture test compares with is the whole image's), see
    # estimate_noise. A stack of more than _JACKKNIFE_PLANES planes: on that many evenly
    # spaced planes (measured afresh as ``replicate_base``), whose jackknife-to-fit error
    # ratio scales the whole stack's fit errors
    sub, sub_total = px, n_total
    if len(pl_all) > _JACKKNIFE_PLANES:
        keep = np.isin(px["plane"], np.unique(np.linspace(
            0, len(pl_all) - 1, _JACKKNIFE_PLANES).round().astype(int)))
        sub = {a: v[keep] for a, v in px.items()}
        sub_total = n_total * _JACKKNIFE_PLANES / len(pl_all)
        try:
            nlf.replicate_base, fixed = _nlf_from_pixels(sub, **{**tail, "n_total": sub_total})
        except ValueError:
            return nlf
    reps = []
    for k in range(_JACKKNIFE_SIDE ** 2):
        sel = sub["group"] != k
        if sel.all():  # an empty group (a small plane): leaving it out is no replicate
            continue
        try:
            reps.append(_nlf_from_pixels(
                {a: v[sel] for a, v in sub.items()}, **{**tail, "n_total": sub_total * sel.mean()},
                pv=fixed["pv"][sel], correlated=fixed["correlated"])[0])
        except ValueError:
            continue
    nlf.replicates = reps
    return nlf


def _nlf_from_pixels(px: dict, *, n_total, clip_lim, reached, kernel, n_bins, pv=None,
                     correlated=None):
    """The noise level function from the per-pixel statistics of :func:`noise_level_function`,
    and ``{"pv", "correlated"}``: the texture test's per-pixel reference variance and whether
    the noise was found correlated. A jackknife replicate passes the whole image's values of
    both (a switch flipping between replicates is not sampling noise of the estimate)."""
    g, m, d2 = px["g"], px["m"], px["d2"]
    lv, block, lim = px["lv"], px["block"], px["lim"]
    if g.size < 4 * _MIN_BIN:
        raise ValueError(
            f"too few unclipped pixels ({g.size}) to estimate the noise; use a larger image or "
            f"more planes, or check the clip limits ({clip_lim})")
    cal = _calibration()
    if pv is None:  # 1. a texture-robust variance per level
        pv = _robust_variance(g, lv, n_bins)
    # 2. correlation between neighbouring noise values (scanners, camera electronics) scales
    #    the high-pass estimate by a constant factor; the correlation-free variance (from the
    #    same structure-blind responses, weighted) does not see it. Their ratio over the smooth
    #    pixels gives the factor.
    rejected = ()
    if kernel is not None:  # a known correlation: the factor follows from it exactly
        factor = _correlation_factor(kernel, _HIGH_PASS)
        factor_se = 0.0
    else:
        # away from a reached low clipping limit (truncated noise there is not Gaussian)
        far = g > clip_lim[0] + 3 * np.sqrt(pv) if clip_lim is not None and reached[0] \
            else np.ones(g.shape, bool)
        # and smooth (the texture test looks at other pixels than both statistics', so it
        # keeps structure out without truncating their noise)
        smooth = far & (lv < cal["threshold"] * pv)
        if smooth.sum() < 4 * _MIN_BIN:
            smooth = far if far.sum() >= 4 * _MIN_BIN else np.ones(g.shape, bool)
        # each pixel weighted by its expected variance: the bright ones would dominate
        wt = 1.0 / pv[smooth]
        ratio, ratio_se = _ratio_with_stderr(d2[smooth] * wt, px["wn"][smooth] * wt,
                                             block[smooth])
        ratio_se = max(ratio_se, _RATIO_SD / math.sqrt(max(int(smooth.sum()), 1)))
        # a ratio within _CORRELATED standard errors of 1 is white noise (applying it would
        # only add its noise to the estimate)
        decide = correlated is None  # the whole image decides; its replicates follow
        if decide:
            correlated = bool(abs(1.0 - ratio) > _CORRELATED * ratio_se)
        if correlated:
            den = px["wn"][smooth]
            if ratio < _STRONG:  # lag-2 and diagonal terms matter: the fuller (noisier) model
                den = px["wf"][smooth]
                ratio, ratio_se = _ratio_with_stderr(d2[smooth] * wt, den * wt, block[smooth])
            if decide:  # the same factor at every level, or it is not noise correlation
                bands, chi2 = _ratio_by_level(d2[smooth] * wt, den * wt, block[smooth],
                                              g[smooth])
                if chi2 > _INCONSISTENT:
                    correlated, rejected = False, bands
        if correlated:
            factor, factor_se = float(max(ratio, 0.1)), ratio_se
        else:
            factor, factor_se = 1.0, 0.0
    # 3. keep the pixels whose surroundings' high-pass energy the noise explains; the mean of
    #    their squared responses is the noise variance (the test shares no pixel with the
    #    responses it keeps, so there is no truncation to correct)
    keep = lv < cal["threshold"] * pv
    g, m, block, lim = g[keep], m[keep], block[keep], lim[keep]
    d2 = d2[keep] / factor
    if g.size < 4 * _MIN_BIN:
        raise ValueError(f"too few smooth pixels ({g.size}) to estimate the noise: the image "
                         f"is textured everywhere; use a larger image or more planes")
    edges = _level_edges(g, n_bins)
    M, V, SE, N, F = _binned(g, m, d2, block, edges, at_limit=lim, dof=_DOF)
    # only limits that the data reach are clipping; level sets near them keep the moments of
    # the clipped data (fitted as such), except where most pixels sit at the limit (the
    # clipped variance says little there)
    clip_lim = _reached_limits(clip_lim, reached)
    usable = F < _MAX_AT_LIMIT
    M, V, SE, N = M[usable], V[usable], SE[usable], N[usable]
    if M.size < 2:
        raise ValueError("fewer than two usable intensity levels: the image is too flat or "
                         "too clipped to estimate a noise level function")
    black = float(np.quantile(m[~lim], 0.01)) if (~lim).any() else float(np.quantile(m, 0.01))
    nlf = NoiseLevelFunction(M, V, SE, N, black, "single-image", clip_lim,
                             fraction_used=float(g.size / n_total), correlation_factor=factor,
                             correlation_stderr=factor_se,
                             correlation_from_kernel=kernel is not None,
                             censored=clip_lim is not None,
                             correlation_rejected=rejected)
    return nlf, {"pv": pv, "correlated": correlated}


def _ratio_by_level(num, den, block, level) -> tuple[tuple, float]:
    """``sum(num) / sum(den)`` in ``_LEVEL_BANDS`` bands of ``level`` (equal counts, darkest
    first), and the chi-square of their disagreement (``_LEVEL_BANDS - 1`` degrees of
    freedom); bands of fewer than ``_MIN_BIN`` pixels (ties in the levels) are left out."""
    edges = np.quantile(level, np.linspace(0, 1, _LEVEL_BANDS + 1))
    band = np.clip(np.searchsorted(edges, level, side="right") - 1, 0, _LEVEL_BANDS - 1)
    fits = [_ratio_with_stderr(num[band == b], den[band == b], block[band == b])
            for b in range(_LEVEL_BANDS) if np.count_nonzero(band == b) >= _MIN_BIN]
    if len(fits) < 2:
        return tuple(f[0] for f in fits), 0.0
    r, se = np.array(fits).T
    w = 1.0 / np.maximum(se, 1e-12) ** 2
    mean = np.sum(w * r) / np.sum(w)
    return tuple(float(v) for v in r), float(np.sum(w * (r - mean) ** 2))


def _ratio_with_stderr(num, den, block) -> tuple[float, float]:
    """``sum(num) / sum(den)`` and its standard error over spatial blocks."""
    total = float(den.sum())
    if not total > 0:  # the correlation-free statistic is unusable here: no evidence
        return 1.0, math.inf
    r = float(num.sum() / total)
    _, inv = np.unique(block, return_inverse=True)
    resid = np.bincount(inv, num) - r * np.bincount(inv, den)
    return r, float(np.sqrt(np.sum(resid ** 2)) / total)


