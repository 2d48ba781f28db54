"""Noise parameters from the data: the noise level function, its fit, and photon transfer.

Every registered model with a known variance-against-mean relation
(:meth:`NoiseModel.noise_level`) is estimated the same way:

1. **Noise level function (NLF)** from one noisy image or stack
   (:func:`noise_level_function`), in the style of Foi et al. (2008): in every 2-D plane, the
   7x7 window of each pixel minus its least-squares fit by every polynomial the window can
   hold up to degree 7 leaves 15 orthonormal high-pass responses, whose mean square is the
   pixel's noise variance wherever the clean image is locally that smooth (blind to
   structure as the 3x3 compact Laplacian-of-Laplacian is, with almost twice its efficiency).
   The level of each measurement is the mean of the data weighted as the responses weigh the
   noise (their footprint), so curvature of the clean image does not bias it. Everything
   that *selects* pixels uses only pixels outside the 7x7 window, so the selection cannot
   favour pixels whose noise came out low: a ring of pixels 4 to 6 away (one parity of a
   checkerboard) gives the level used to group pixels into level sets, and the texture test
   (leaving out pixels whose surroundings hold more high-pass energy than the noise
   explains) looks at the responses 7 to 9 pixels away. Short-range noise correlation of real
   scanners and cameras scales the responses' mean square; the responses see each lag
   differently, so a fixed weighting of them is free of it, and their ratio measures it.
   Near clipping limits (the dtype's limits where the data reach them) the levels are kept
   as moments of the clipped data, which the fit models (``NoiseLevelFunction.censored``).
   From a stack of repeated frames of a static scene, :func:`photon_transfer` gives the NLF
   from temporal means and variances instead.
2. **Fit** (:func:`fit_noise_level`): the model's free parameters (``NoiseModel.estimable``,
   minus any given as known) by weighted least squares on the NLF, with standard errors from
   the Jacobian (inflated by the reduced chi-square when the model does not fit exactly).

A correlated model's kernel A (which the variances cannot give) is estimated first, from the
noise's covariance between pixels (:mod:`scoredenoise.estimate_kernel`), unless given.

The offset of ``poisson-gaussian`` is not identifiable from the variance: only the intercept
``read_noise**2 - gain * offset`` is. Unless ``offset`` or ``read_noise`` is given, the offset
is taken as the darkest level of the data (the assumption that the darkest regions receive no
photons), and the result says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import _axes
from ._measure import (  # noqa: F401 (measurement primitives, also used here)
    _CALIBRATION,
    _DOF,
    _FOOTPRINT,
    _HALF,
    _HIGH_PASS,
    _JACKKNIFE_SIDE,
    _LAGS_FAR,
    _LAGS_NEAR,
    _LEVEL_RING,
    _MARGIN,
    _MAX_PIXELS,
    _MIN_BIN,
    _MIN_PIXELS,
    _QUANTILE,
    _SPIKE_MIN,
    _SPIKE_RATIO,
    _TEXTURE_RING,
    _TILE,
    _WHITE_FAR,
    _WHITE_NEAR,
    _calibration,
    _clip_limits,
    _cross_correlation,
    _degrees_of_freedom,
    _detected_limits,
    _frame,
    _high_pass_basis,
    _high_pass_energy,
    _level_edges,
    _measured_planes,
    _plane_statistics,
    _planes,
    _reached_limits,
    _read,
    _ring_average,
    _robust_variance,
    _surroundings,
    _white_weights,
    _windows,
)
from ._progress import ProgressFn
from ._progress import report as _report
from .estimate_kernel import estimate_noise_kernel
from .noise import NoiseModel, NoiseModelError
from .noise._clipping import normal_clipped_moments as _censored_moments
from .solve import resolve_noise_model

#: at most this many pixels of an image are measured by default (``max_pixels``)
MAX_PIXELS = _MAX_PIXELS

__all__ = [
    "NoiseLevelFunction",
    "NoiseEstimate",
    "noise_level_function",
    "photon_transfer",
    "fit_noise_level",
    "estimate_noise",
]


def _correlation_factor(kernel: np.ndarray, basis) -> float:
    """How a known noise correlation kernel scales the variance seen through ``basis``."""
    from scipy.signal import convolve2d

    k = np.asarray(kernel, dtype=np.float64)
    if k.size == 1:  # a single tap: white noise, exactly
        return 1.0
    return float(np.mean([np.sum(convolve2d(k, h) ** 2) for h in basis]) / np.sum(k * k))


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
                "correlation_rejected": list(self.correlation_rejected)}

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


@dataclass
class NoiseEstimate:
    """Estimated noise-model parameters with their uncertainty.

    Attributes
    ----------
    noise_model : NoiseModel
        The model with the estimated (and the given or default) parameters: pass it to
        :func:`scoredenoise.denoise`.
    stderr : dict
        Standard error of each estimated parameter (data units).
    estimated : tuple of str
        The parameters that were fitted; the others were given, fixed or derived.
    derived : dict
        Identifiable combinations and how fixed parameters were chosen, e.g. the intercept
        ``read_noise**2 - gain * offset`` of ``poisson-gaussian`` with its standard error.
    notes : list of str
        Assumptions made, in words.
    nlf : NoiseLevelFunction
        The measured noise level function the model was fitted to (plot ``nlf.mean`` against
        ``nlf.variance`` beside ``nlf.model_variance(noise_model)``).
    chi2 : float
        Reduced chi-square of the fit (about 1 when the model explains the data).
    given : tuple of str
        The parameters passed as known (fixed, not fitted).
    kernel : NoiseKernel or None
        For a correlated model whose kernel was estimated: the kernel fit
        (:func:`scoredenoise.estimate_noise_kernel`), with the kernel's standard errors.
    """

    noise_model: NoiseModel
    stderr: dict
    estimated: tuple
    nlf: NoiseLevelFunction
    chi2: float
    derived: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    given: tuple = ()
    kernel: object = None

    @property
    def params(self) -> dict:
        """The model's parameters, as for ``get_noise_model(name, **params)``."""
        return self.noise_model.to_dict()["params"]

    def to_dict(self) -> dict:
        return {"noise_model": self.noise_model.to_dict(), "stderr": self.stderr,
                "estimated": list(self.estimated), "given": list(self.given),
                "derived": self.derived,
                "notes": self.notes, "chi2": self.chi2, "nlf": self.nlf.to_dict(),
                "kernel": self.kernel.to_dict() if self.kernel is not None else None}

    def summary(self) -> str:
        """A few lines for people: each parameter with its standard error, and the notes."""
        lines = [f"{self.noise_model.name} ({self.nlf.method}, {len(self.nlf.mean)} levels, "
                 f"reduced chi2 {self.chi2:.2f})"]

        def pm(value, se):
            # as a share only where it is one (a value near 0, such as a photon counter's
            # read noise, has an error of millions of per cent)
            rel = f" ({100 * se / abs(value):.1f} %)" if se < abs(value) else ""
            return f"+/- {se:.3g}{rel}"

        for name, value in self.params.items():
            if isinstance(value, list):
                continue
            se = self.stderr.get(name)
            how = (pm(value, se) if se is not None else
                   "(given)" if name in self.given else
                   f"({self.derived[name + '_from']})" if name + "_from" in self.derived else
                   "(not fitted)")
            lines.append(f"  {name:<14} {value:12.5g} {how}")
        for name, value in self.derived.items():
            if isinstance(value, (int, float)) and not name.endswith("_stderr"):
                se = self.derived.get(f"{name}_stderr")
                lines.append(f"  {name:<14} {value:12.5g} {pm(value, se) if se else ''}".rstrip())
        if self.kernel is not None:
            lines += ["  " + ln for ln in self.kernel.summary().splitlines()]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the noise level function


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
#: side of those blocks, at most (smaller planes: as large as gives every group two blocks a
#: side, and at least 8; groups that a small plane leaves empty make no replicate). Groups
#: are independent only where the statistics of neighbouring blocks share no noise; the
#: responses of pixels up to 6 apart do, so a block's border correlates with its
#: neighbours' (other groups): on 512x512, 40 paired draws (benchmarks/noise.py --parts 5
#: --calibration-size 512), the spread was 1.10-1.12x the jackknife with 16-pixel blocks,
#: 1.00-1.02x with 32
_JACKKNIFE_BLOCK = 32
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
        jb = int(np.clip((min(ok.shape) - 2 * _MARGIN) // (2 * side), 8, _JACKKNIFE_BLOCK))
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
    s1 = s2 = sd2 = None
    at_limit = None
    reached = [False, False]
    ref = prev = None
    _report(progress, 0, n)
    for t in range(n):
        f = _frame(stack, axis, t)
        if ref is None:
            ref = f  # shift for numerically stable sums
            s1, s2, sd2 = np.zeros_like(f), np.zeros_like(f), np.zeros_like(f)
            at_limit = np.zeros(f.shape)
            if isinstance(clip, str):
                finite = f[np.isfinite(f)]
                clip_lim = _detected_limits(finite, clip_lim)
        else:
            sd2 += (f - prev) ** 2
        s1 += f - ref
        s2 += (f - ref) ** 2
        prev = f
        if clip_lim is not None:
            low, high = f <= clip_lim[0], f >= clip_lim[1]
            reached = [reached[0] or bool(low.any()), reached[1] or bool(high.any())]
            at_limit += low | high
        _report(progress, t + 1, n)
    mean = ref + s1 / n
    var = sd2 / (2 * (n - 1)) if differences else (s2 - s1 ** 2 / n) / (n - 1)
    ok = np.isfinite(mean) & np.isfinite(var)  # a pixel missing in a frame is left out
    if ok.sum() < 4 * _MIN_BIN:
        raise ValueError(f"only {int(ok.sum())} pixels have a value in every frame; photon "
                         f"transfer needs at least {4 * _MIN_BIN}")
    mu, v = mean[ok], var[ok]
    edges = _level_edges(mu, n_bins)
    block = np.arange(mu.size)  # pixel time series are independent
    # near a reached limit the moments are those of the clipped data (fitted as such)
    clip_lim = _reached_limits(clip_lim, reached)
    M, V, SE, N, F = _binned(mu, mu, v, block, edges, at_limit=at_limit[ok] / n)
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
    return NoiseLevelFunction(M, V, SE, N, float(np.quantile(mu, 0.01)), "photon-transfer",
                              clip_lim, fraction_used=float(ok.mean()),
                              censored=clip_lim is not None)


def _chi2_scale(resid, se, n_params) -> float:
    dof = max(len(resid) - n_params, 1)
    return max(1.0, float(np.sum((resid / se) ** 2)) / dof)


# ---------------------------------------------------------------------------------------------
# fitting a registered model


def fit_noise_level(nlf: NoiseLevelFunction, model="poisson-gaussian", **known
                    ) -> NoiseEstimate:
    """Fit a noise model's free parameters to a measured noise level function.

    Parameters
    ----------
    nlf : NoiseLevelFunction
        From :func:`noise_level_function` or :func:`photon_transfer`.
    model : str, dict or NoiseModel
        The noise model; its non-estimable parameters keep the values given here, and so does
        its correlation kernel, which the variances cannot give (:func:`estimate_noise`
        estimates it from the image, :func:`scoredenoise.estimate_noise_kernel`).
    **known
        Parameters known beforehand; they are fixed, not fitted (e.g. ``offset=100``).

    Returns
    -------
    NoiseEstimate
    """
    from scipy.optimize import least_squares

    base = resolve_noise_model(model, **known)
    custom = getattr(base, "fit_noise_level", None)
    if custom is not None:  # a model whose parameters are not all identifiable
        fit = custom(nlf, known)
        return NoiseEstimate(fit.noise_model, fit.stderr, tuple(fit.estimated), nlf, fit.chi2,
                             fit.derived, fit.notes, given=tuple(known))
    meta = {p.name: p for p in base.parameters()}
    scalar = [n for n in base.estimable if meta[n].kind != "kernel"]
    free = [n for n in scalar if n not in known]
    if not scalar:
        raise NoiseModelError(
            f"{base.name}: no parameter can be estimated from the variance; choose them with "
            f"scoredenoise.select_noise_parameters (blind selection with a trained model)")
    M, V, SE = nlf.mean, nlf.variance, nlf.stderr
    if not free:
        resid = V - nlf.model_variance(base)
        return NoiseEstimate(base, {}, (), nlf, _chi2_scale(resid, SE, 0), given=tuple(known))
    # positive parameters are fitted in log space
    logp = [meta[n].low is not None and meta[n].low >= 0 for n in free]

    def build(theta):
        vals = {n: (math.exp(t) if lg else t) for n, t, lg in zip(free, theta, logp)}
        return base.replace(**vals)

    def residual(theta):
        try:
            return (V - nlf.model_variance(build(theta))) / SE
        except (NoiseModelError, OverflowError):  # invalid, or exp() of a runaway step
            return np.full(M.shape, 1e6)

    best = None
    scales = [0.1, 0.3, 1.0, 3.0, 10.0]
    starts = np.array(np.meshgrid(*[scales] * len(free))).reshape(len(free), -1).T
    data_scale = math.sqrt(max(float(np.median(V)), 1e-12))
    for st in starts:
        theta0 = []
        for n, lg, k in zip(free, logp, st):
            v0 = float(getattr(base, n))
            if v0 == 0:
                v0 = data_scale
            theta0.append(math.log(abs(v0) * k) if lg else v0 * k)
        try:
            r = least_squares(residual, theta0, method="lm" if len(M) > len(free) else "trf",
                              x_scale="jac")
        except ValueError:
            continue
        if best is None or r.cost < best.cost:
            best = r
    if best is None:
        raise NoiseModelError(f"{base.name}: the fit to the noise level function failed")
    fitted = build(best.x)
    J = best.jac
    chi2 = _chi2_scale(best.fun * 1.0, np.ones_like(best.fun), len(free))
    try:
        cov = np.linalg.inv(J.T @ J) * chi2
        sd = np.sqrt(np.maximum(np.diag(cov), 0))
    except np.linalg.LinAlgError:
        sd = np.full(len(free), np.inf)
    stderr = {}
    for n, lg, s in zip(free, logp, sd):
        v = float(getattr(fitted, n))
        stderr[n] = float(abs(v) * s) if lg else float(s)  # delta method for log parameters
    return NoiseEstimate(fitted, stderr, tuple(free), nlf, chi2, given=tuple(known))


def estimate_noise(image, model="poisson-gaussian", *, axes: str | None = None,
                   clip="auto", frames_axis: int | None = None, max_planes: int = 32,
                   max_pixels: int = _MAX_PIXELS, correlation: str = "auto",
                   kernel_shape=None, progress: ProgressFn | None = None,
                   **known) -> NoiseEstimate | list[NoiseEstimate]:
    """Estimate the noise-model parameters of a noisy image or stack.

    Parameters
    ----------
    image : array_like
        One noisy image or a stack (2-D, 3-D, time-lapse; numpy, dask or zarr), in the data's
        own units (do not rescale it first).
    model : str, dict or NoiseModel
        Registered model whose parameters to estimate (``scoredenoise noise-models``); its
        ``estimable`` parameters are fitted, the others keep their given values.
    axes : str, optional
        Axes letters of ``image`` (TCZYXS). With a channel axis C, each channel is estimated
        on its own (confocal detectors, for one, have their own gains) and a list comes back.
    clip : "auto", None or (low, high)
        Clipping limits, modelled in the fit (``"auto"``: the integer dtype's limits, and
        values the data pile up at; see :func:`noise_level_function`).
    frames_axis : int, optional
        If given, ``image`` holds repeated frames of a static scene along this axis and the
        photon-transfer fit (temporal mean against temporal variance) is used instead of the
        single-image method.
    max_planes, max_pixels : int
        At most this many planes of a stack, and pixels in all, are measured by the
        single-image method (:func:`noise_level_function`: evenly spaced planes, and tiles of
        a plane larger than ``max_pixels``; memory 230-300 bytes a pixel at the peak).
    correlation : {"auto", "none"}
        Noise correlation between neighbouring pixels (scanners, some cameras), which
        lowers the measured variance. ``"auto"``: measured in the image and corrected where
        it is significant (fine texture can pass for it, docs/noise-estimation.md);
        ``"none"``: the noise is known to be white, no correction. A model with a correlation
        kernel uses its kernel instead. Photon transfer does not need it.
    kernel_shape : int or (int, int), optional
        A correlated model's kernel is estimated from the noise's covariance
        (:func:`scoredenoise.estimate_noise_kernel`) unless given as ``kernel=``; this is its
        shape (default: the shape of the model's kernel, 3x3 for the paper's).
    progress : callable, optional
        ``progress(done, total)`` as planes, tiles or frames are measured (a correlated
        model whose kernel is estimated reads them twice; channels one after another);
        returning False stops with :class:`scoredenoise.Cancelled`.
    **known
        Parameters known beforehand (fixed, not fitted), e.g. ``offset=100.0``.

    Returns
    -------
    NoiseEstimate, or a list of them (one per channel) when ``axes`` has C
        ``.noise_model`` for :func:`scoredenoise.denoise` (which takes the list as well),
        ``.stderr``, ``.summary()``, and the measured noise level function ``.nlf`` for
        plotting.

    Examples
    --------
    >>> import numpy as np
    >>> import scoredenoise
    >>> cam = scoredenoise.get_noise_model("poisson-gaussian", gain=2.0, offset=100.0,
    ...                                    read_noise=3.0)
    >>> x = np.tile(np.linspace(0, 2000, 512), (512, 1))
    >>> est = scoredenoise.estimate_noise(cam.sample(x, rng=0), "poisson-gaussian")
    >>> round(est.params["gain"], 1)
    2.0
    """
    if correlation not in ("auto", "none"):
        raise ValueError(f"correlation must be 'auto' (measure it) or 'none' (white noise), "
                         f"got {correlation!r}")
    if axes is not None and "C" in axes.upper():  # each channel has its own noise
        axes = _axes.check_axes(axes, len(np.shape(image)), 2)
        ch = axes.index("C")
        if frames_axis is not None:
            if not -len(axes) <= frames_axis < len(axes):
                raise ValueError(f"frames_axis {frames_axis} is out of range for axes "
                                 f"{axes!r}")
            frames_axis %= len(axes)
            if frames_axis == ch:
                raise ValueError(f"frames_axis {frames_axis} is the channel axis C of axes "
                                 f"{axes!r}; give the axis of the repeated frames")
            frames_axis -= frames_axis > ch
        kw = dict(axes=axes.replace("C", ""), clip=clip, frames_axis=frames_axis,
                  max_planes=max_planes, max_pixels=max_pixels, correlation=correlation,
                  kernel_shape=kernel_shape, **known)
        n_ch = np.shape(image)[ch]
        return [estimate_noise(image[(slice(None),) * ch + (c,)], model,
                               progress=_part(progress, c, n_ch), **kw)
                for c in range(n_ch)]
    nm = resolve_noise_model(model, **known)
    given = tuple(known)
    kname = next((p.name for p in nm.parameters() if p.kind == "kernel"), None)
    if correlation == "none" and kname is not None:
        raise ValueError(f"correlation='none' contradicts the correlation kernel of "
                         f"{nm.name!r}; use a model without a kernel, or correlation='auto'")
    kfit = None
    # the kernel's measurement reads the same planes (or frames) as the noise level's
    passes = 2 if kname is not None and kname in nm.estimable and kname not in known else 1
    if passes == 2:
        kfit = _model_kernel(image, nm, kname, known, kernel_shape, axes=axes, clip=clip,
                             frames_axis=frames_axis, max_planes=max_planes,
                             max_pixels=max_pixels, progress=_part(progress, 0, 2))
        known = {**known, kname: kfit.kernel}
        nm = resolve_noise_model(model, **known)
    elif kernel_shape is not None:
        raise ValueError(f"kernel_shape is the shape of an estimated kernel, but "
                         f"{nm.name!r} has " + ("its kernel given" if kname else "no kernel"))
    measured = _part(progress, passes - 1, passes)
    if frames_axis is not None:
        nlf = photon_transfer(image, axis=frames_axis, clip=clip, progress=measured)
    else:
        kernel = getattr(nm, kname) if kname and np.ndim(getattr(nm, kname)) == 2 else None
        if correlation == "none":
            kernel = np.ones((1, 1))  # white: the factor is exactly 1
        nlf = noise_level_function(image, axes=axes, clip=clip, max_planes=max_planes,
                                   max_pixels=max_pixels, kernel=kernel, progress=measured)
    est = fit_noise_level(nlf, model, **known)
    if kfit is not None:
        est.given, est.estimated, est.kernel = given, est.estimated + (kname,), kfit
    if est.chi2 > _POOR_FIT:
        est.notes.append(
            f"the model does not explain the measured variances (reduced chi2 {est.chi2:.1f}; "
            f"on noisy images it is 0.1-1.2): structure that passes for noise (sharp edges, "
            f"burned-in annotations), clipping that was not found (pass clip=), or noise of "
            f"another kind; check the variance-against-mean plot before using these values")
    if correlation == "none" and frames_axis is None:
        est.notes.append("noise assumed white (correlation='none'): no correlation correction")
    if nlf.correlation_rejected:
        est.notes.append(
            "the responses that measure noise correlation differ between levels ("
            + ", ".join(f"{v:.2f}" for v in nlf.correlation_rejected)
            + " from dark to bright), which a noise correlation does not do: taken as fine "
              "texture, no correlation correction applied; if the noise is correlated, use a "
              "model with its kernel")
    if nlf.correlation_stderr > 0:  # measured (not computed from a known kernel)
        est.notes.append(f"noise correlated between neighbours: variances divided by the "
                         f"measured factor {nlf.correlation_factor:.3f} +/- "
                         f"{nlf.correlation_stderr:.3f}")
    if _jackknife(est, nlf.replicates, model, known, nlf.replicate_base):
        if kfit is not None:  # the replicates keep the kernel: its own spread is added
            _kernel_errors(est, nlf, model, known, kname)
        return est
    rel = nlf.correlation_stderr / nlf.correlation_factor
    if rel > 0:  # the factor scales every variance: refit at +-1 se and add in quadrature
        import dataclasses

        fits = [fit_noise_level(dataclasses.replace(nlf, variance=nlf.variance * f,
                                                    stderr=nlf.stderr * f), model, **known)
                for f in (1 / (1 + rel), 1 / (1 - rel))]
        for name in est.stderr:
            spread = abs(fits[1].params.get(name, 0.0) - fits[0].params.get(name, 0.0)) / 2
            est.stderr[name] = float(np.hypot(est.stderr[name], spread))
        key = "intercept"
        if key in est.derived and f"{key}_stderr" in est.derived:
            spread = abs(fits[1].derived[key] - fits[0].derived[key]) / 2
            est.derived[f"{key}_stderr"] = float(np.hypot(est.derived[f"{key}_stderr"],
                                                          spread))
    if kfit is not None:
        _kernel_errors(est, nlf, model, known, kname)
    return est


def _model_kernel(image, nm, kname, known, shape, **kw):
    """The correlation kernel of ``nm``'s noise from the image: of the model's kernel's shape
    (or ``shape``), with the white part after it fitted where the model's white parameters
    are to be estimated and taken from the model where not."""
    if shape is None:
        own = np.shape(getattr(nm, kname))
        if len(own) > 2:
            raise ValueError(f"{nm.name}: a {len(own)}-D kernel cannot be estimated (2-D "
                             f"kernels only); give it as kernel=")
        shape = own if len(own) == 2 else (1,) + own
    free_white = any(p in nm.estimable and p not in known for p in type(nm).white_params)
    white = None if free_white else float(np.max(nm.white_noise_level(np.zeros(1))))
    return estimate_noise_kernel(image, shape=shape, white=white, **kw)


def _kernel_errors(est: NoiseEstimate, nlf, model, known, kname) -> None:
    """Add the estimated kernel's uncertainty to the other parameters' standard errors: refit
    with each of the kernel's jackknife replicates (the single-image variances divided by
    their correlation factor instead of the estimate's) and add the spread in quadrature."""
    import dataclasses

    reps = est.kernel.replicates
    if len(reps) < 8 or not est.stderr:
        return
    f0 = _correlation_factor(est.kernel.kernel, _HIGH_PASS)
    fits = []
    for k in reps:
        scale = f0 / _correlation_factor(k, _HIGH_PASS) if nlf.correlation_from_kernel else 1.0
        try:
            fits.append(fit_noise_level(dataclasses.replace(
                nlf, variance=nlf.variance * scale, stderr=nlf.stderr * scale),
                model, **{**known, kname: k}).params)
        except (NoiseModelError, ValueError):
            continue
    n = len(fits)
    if n < 8:
        return
    for name in est.stderr:
        v = np.array([f[name] for f in fits])
        spread = float(np.sqrt((n - 1) / n * np.sum((v - v.mean()) ** 2)))
        est.stderr[name] = float(np.hypot(est.stderr[name], spread))


def _jackknife(est: NoiseEstimate, replicates, model, known, base=None) -> bool:
    """Raise the fit's standard errors to leave-one-tile-out jackknife ones where larger.

    The fit's own errors treat the level sets as independent measurements with known
    variances and leave out the data-dependent steps (texture test, correlation factor).
    Refitting with each of K = 16 groups of pixels left out in turn (interleaved blocks of
    up to 32x32, ``_JACKKNIFE_BLOCK``: each group spans the whole image), sd = sqrt((K - 1)
    / K * sum((theta_k - mean)^2)) takes those steps into account. Measured
    (``benchmarks/noise.py --parts 5``, a smooth 256x256 scene, 200 noise draws): spread
    over the fit's own error 0.93-0.97, over the jackknife's 0.99-1.09 (1.13-1.16 with
    16x16 blocks, whose borders share noise with their neighbours'), over the stated error
    0.89-0.95. On real FMD frames the jackknife is the larger: it holds the measured
    correlation factor's uncertainty.
    With ``base`` (a stack: the replicates leave groups out of a few of its planes), the
    ratio of the jackknife error to the fit's own error on those planes scales the fit's
    error of the whole stack. Returns False (errors left as they are) with fewer than 8
    usable replicates.
    """
    if base is not None:
        try:
            ref = fit_noise_level(base, model, **known)
        except (NoiseModelError, ValueError):
            return False
    fits = []
    for r in replicates:
        try:
            fits.append(fit_noise_level(r, model, **known))
        except (NoiseModelError, ValueError):
            continue
    k = len(fits)
    if k < 8:
        return False

    def spread(values):
        v = np.asarray(values, dtype=np.float64)
        return float(np.sqrt((k - 1) / k * np.sum((v - v.mean()) ** 2)))

    def combine(jack, own, ref_own):
        # never below the fit's own error: where the data-dependent steps add nothing, the
        # jackknife of 16 groups is itself noisy (about 20 % a draw) and up to 1.1x small
        if base is None:
            return max(jack, own)
        return max(own * jack / ref_own, own) if ref_own > 0 else own

    for name in est.stderr:
        est.stderr[name] = combine(spread([f.params[name] for f in fits]), est.stderr[name],
                                   ref.stderr.get(name, 0.0) if base is not None else 0.0)
    key = "intercept"
    if key in est.derived and f"{key}_stderr" in est.derived:
        est.derived[f"{key}_stderr"] = combine(
            spread([f.derived[key] for f in fits]), est.derived[f"{key}_stderr"],
            ref.derived.get(f"{key}_stderr", 0.0) if base is not None else 0.0)
    est.notes.append(f"standard errors: the larger of the fit's and a jackknife's ({k} groups "
                     f"of pixels left out in turn)")
    return True
