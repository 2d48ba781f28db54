"""The correlation kernel A of a correlated noise model, estimated from the noise itself.

Correlated models (``gaussian-correlated``, ``poisson-correlated``, the rows 12-16 mixtures,
...) describe noise that a small kernel A spreads over neighbouring pixels: y = A z (+ white
noise). Locally, where the clean image is constant, the noise covariance between pixels d
apart is then ``c(level) K(d) + w delta(d)``, where ``K = A * A^T`` is the kernel's
autocorrelation, ``c`` the variance of z (which may depend on the level) and ``w`` the
variance of noise added after A (read noise; 0 for a model without it).

:func:`estimate_noise_kernel` measures that covariance and fits the kernel to it:

* **one image or stack** (single-image): in every plane, the 15 structure-blind high-pass
  responses of each pixel's 7x7 window (the same ones the noise level function uses, blind
  to every polynomial of degree 7) have second moments ``F Sigma F^T`` that are linear in
  the noise covariance ``Sigma``; their 120 distinct products are averaged over the smooth
  pixels (the texture test of :func:`scoredenoise.noise_level_function`) in bands of level;
* **repeated frames of a static scene** (photon transfer): products of differences of
  consecutive frames at every lag, in bands of the temporal mean: the scene cancels.

The fit is over a centro-symmetric kernel of the requested shape, normalised to sum 1 (the
convention of the paper's kernel, Eq. 30: the kernel keeps the mean), with the band
variances ``c`` and the white variance ``w`` solved as non-negative linear unknowns for each
kernel tried (variable projection). Standard errors come from a jackknife over 16 groups of
interleaved blocks.

What is identifiable: the noise statistics give the kernel's power spectrum ``|H|^2`` only,
so the kernel is found up to its phase; the centro-symmetric kernel returned has exactly the
noise covariance of a symmetric kernel (crosstalk, blur, the paper's kernel) and is the same
kernel there. A one-sided kernel (afterglow along a scan line) is approximated by the
symmetric kernel of the shape whose covariance is closest (``chi2`` shows a misfit; a larger
``shape`` fits it better). The high-pass responses see the noise at high spatial
frequencies; the kernel's low frequencies follow from its small support, so the estimate of
a nearly white kernel is the least precise (about 0.02 on the centre weight from one 512x512
plane, 0.002 for the paper's kernel). ``w`` is identifiable only where ``c`` changes with
the level (signal-dependent noise before A): with Gaussian noise on both sides of A give
``white=`` from elsewhere.
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
    _calibration,
    _clip_limits,
    _detected_limits,
    _frame,
    _measured_planes,
    _plane_statistics,
    _planes,
    _reached_limits,
    _robust_variance,
    _surroundings,
)
from ._progress import ProgressFn
from ._progress import report as _report
from .noise import NoiseModelError
from .noise._correlation import Correlation

__all__ = ["NoiseKernel", "estimate_noise_kernel"]

#: level bands (equal counts) whose variances are fitted separately: they separate the white
#: part from a signal-dependent correlated part
_BANDS = 6
#: the largest kernel side the single-image method can fit: its autocorrelation reaches
#: (side - 1) pixels, and the 7x7 responses see lags up to 6
_MAX_SIDE = 7
#: pixels whose responses are multiplied at once (bounds memory: 49 values each)
_PIXEL_BATCH = 1 << 16


@dataclass
class NoiseKernel:
    """Result of :func:`estimate_noise_kernel`.

    Attributes
    ----------
    kernel : ndarray
        The centro-symmetric correlation kernel, summing to 1; pass it as a correlated
        model's ``kernel``.
    stderr : ndarray
        Jackknife standard error of each weight (``nan`` with too few groups).
    white_variance, white_stderr : float
        Variance of the white noise added after the kernel (estimated, or as given) and its
        standard error (0 when given).
    levels, variance : ndarray
        Mean level of each band and the variance of the noise before the kernel there, as the
        kernel's normalisation gives it (the model's ``noise_level / sum(kernel**2)``).
    chi2 : float
        Reduced chi-square of the fit (about 1: the kernel's shape explains the measured
        covariances; much larger: try a larger ``shape``).
    method : str
        ``"single-image"`` or ``"photon-transfer"``.
    n_pixels : int
        Pixels (single-image) or pixel time series (photon transfer) used.
    notes : list of str
    """

    kernel: np.ndarray
    stderr: np.ndarray
    white_variance: float
    white_stderr: float
    levels: np.ndarray
    variance: np.ndarray
    chi2: float
    method: str
    n_pixels: int
    white_given: bool = True
    notes: list = field(default_factory=list)
    #: the kernels of the jackknife's replicates (for propagating the kernel's uncertainty)
    replicates: list = field(default_factory=list, repr=False)

    @property
    def autocorrelation(self) -> np.ndarray:
        """Correlation coefficient of the kernel's part of the noise at every lag (centre:
        lag 0, value 1): ``K / K[0]`` with ``K = kernel * kernel^T``."""
        k = self.kernel
        c = np.real(np.fft.ifft2(np.abs(np.fft.fft2(k, [2 * n - 1 for n in k.shape])) ** 2))
        c = np.roll(c, [n - 1 for n in k.shape], axis=(0, 1))
        return c / c[k.shape[0] - 1, k.shape[1] - 1]

    def to_dict(self) -> dict:
        return {"kernel": self.kernel.tolist(), "stderr": self.stderr.tolist(),
                "white_variance": self.white_variance, "white_stderr": self.white_stderr,
                "white_given": self.white_given, "levels": self.levels.tolist(),
                "variance": self.variance.tolist(), "chi2": self.chi2, "method": self.method,
                "n_pixels": self.n_pixels, "notes": list(self.notes)}

    def summary(self) -> str:
        """The kernel with its standard errors, a few lines for people."""
        h, w = self.kernel.shape
        head = (f"noise correlation kernel {h}x{w} ({self.method}, {self.n_pixels} pixels, "
                f"reduced chi2 {self.chi2:.2f}; sum 1)")
        lines = [head]
        for r in range(h):
            lines.append("  " + "  ".join(
                f"{self.kernel[r, c]:7.4f} +/- {self.stderr[r, c]:.4f}" for c in range(w)))
        how = "given" if self.white_given else f"+/- {self.white_stderr:.3g}"
        lines.append(f"  white noise variance after the kernel: {self.white_variance:.4g} "
                     f"({how})")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the model: lags, design, fit


def _check_shape(shape, max_side=None) -> tuple[int, int]:
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape), int(shape))
    try:
        h, w = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be an odd kernel size or a pair of them, e.g. 3 or "
                         f"(1, 3), got {shape!r}") from None
    if h < 1 or w < 1 or h % 2 == 0 or w % 2 == 0:
        raise ValueError(f"shape must be odd sizes (the kernel has a centre), got {(h, w)}")
    if h * w == 1:
        raise ValueError("shape (1, 1) is white noise: nothing to estimate; use a model "
                         "without a kernel")
    if max_side is not None and max(h, w) > max_side:
        raise ValueError(f"shape {(h, w)}: the single-image method fits kernels up to "
                         f"{max_side}x{max_side} (its 7x7 windows see lags up to 6); estimate "
                         f"larger ones from repeated frames (frames_axis=)")
    return h, w


def _lags(shape) -> list[tuple[int, int]]:
    """Lag 0 and one of each pair of opposite lags of the kernel's autocorrelation."""
    ay, ax = shape[0] - 1, shape[1] - 1
    return [(0, 0)] + [(dy, dx) for dy in range(ay + 1) for dx in range(-ax, ax + 1)
                       if dy > 0 or dx > 0]


def _design(basis, lags) -> np.ndarray:
    """The expected products of the responses of ``basis`` (upper triangle, one row each)
    for a unit covariance at each lag (and its mirror image): columns of the linear map from
    the noise covariance to the measured second moments."""
    F = np.asarray(basis).reshape(len(basis), -1)
    s = np.asarray(basis).shape[1]
    yy, xx = (a.ravel() for a in np.mgrid[0:s, 0:s])
    dy, dx = yy[:, None] - yy[None, :], xx[:, None] - xx[None, :]
    iu = np.triu_indices(len(basis))
    cols = []
    for ly, lx in lags:
        T = ((dy == ly) & (dx == lx)).astype(np.float64)
        if (ly, lx) != (0, 0):
            T = T + T.T
        cols.append((F @ T @ F.T)[iu])
    return np.array(cols).T


def _symmetric_kernel(shape):
    """The free weights of a centro-symmetric kernel (centre fixed at 1 in the fit) and a
    function building the kernel from them."""
    ky, kx = shape[0] // 2, shape[1] // 2
    free = [(dy, dx) for dy in range(ky + 1) for dx in range(-kx, kx + 1) if dy > 0 or dx > 0]

    def build(theta):
        k = np.zeros(shape)
        k[ky, kx] = 1.0
        for t, (dy, dx) in zip(theta, free):
            k[ky + dy, kx + dx] = k[ky - dy, kx - dx] = t
        return k

    return free, build


def _autocorrelation_at(k: np.ndarray, lags) -> np.ndarray:
    from scipy.signal import convolve2d

    c = convolve2d(k, k[::-1, ::-1])
    cy, cx = k.shape[0] - 1, k.shape[1] - 1
    return np.array([c[cy + dy, cx + dx] for dy, dx in lags])


def _fit(S, n, A, spread, shape, white):
    """Fit ``S[b] ~ A (c_b K(kernel) + w delta)`` over the kernel (variable projection: the
    non-negative ``c_b`` and ``w`` are solved linearly for each kernel tried).

    ``S``: measured moments per band, (bands, rows of A); ``n``: pixels per band;
    ``spread(S)``: each moment's standard deviation per pixel (Gaussian noise); ``white``:
    None (``w`` fitted) or the known ``w``. Returns the kernel (sum 1), the band variances
    for it, ``w``, and the reduced chi-square.
    """
    from scipy.optimize import least_squares, nnls

    lags = _lags(shape)
    free, build = _symmetric_kernel(shape)
    nb = len(S)
    delta = A[:, 0]
    sd = np.maximum(spread(S), 1e-300) / np.sqrt(n)[:, None]

    def linear(theta):
        AK = A @ _autocorrelation_at(build(theta), lags)
        M = np.zeros((nb, A.shape[0], nb + (white is None)))
        for b in range(nb):
            M[b, :, b] = AK / sd[b]
            if white is None:
                M[b, :, nb] = delta / sd[b]
        rhs = (S - (0.0 if white is None else white) * delta[None, :]) / sd
        M, rhs = M.reshape(-1, M.shape[2]), rhs.ravel()
        coef, _ = nnls(M, rhs, maxiter=50 * M.shape[1])
        return coef, M @ coef - rhs

    best = None
    starts = [np.zeros(len(free)),  # white
              np.array([0.5 ** (abs(dy) + abs(dx)) / 2 for dy, dx in free])]  # smooth
    for theta0 in starts:
        try:
            r = least_squares(lambda t: linear(t)[1], theta0, x_scale="jac")
        except (ValueError, np.linalg.LinAlgError):
            continue
        if best is None or r.cost < best.cost:
            best = r
    if best is None:
        raise NoiseModelError("the kernel fit failed")
    coef, res = linear(best.x)
    k = build(best.x)
    s = float(k.sum())
    if abs(s) < 1e-3 * np.abs(k).sum():
        raise NoiseModelError("the fitted kernel sums to about 0 (no noise at low "
                              "frequencies): it cannot be normalised; is the noise correlated "
                              "this way?")
    w = float(coef[nb]) if white is None else float(white)
    dof = max(res.size - len(free) - nb - (white is None), 1)
    return k / s, coef[:nb] * s * s, w, float(np.sum(res ** 2) / dof)


# ---------------------------------------------------------------------------------------------
# measuring the covariances


def _bands(level: np.ndarray, n_bands: int) -> np.ndarray:
    edges = np.quantile(level, np.linspace(0, 1, n_bands + 1))
    return np.clip(np.searchsorted(edges, level, side="right") - 1, 0, n_bands - 1)


def _single_image_moments(image, axes, clip, max_planes, max_pixels, progress=None):
    """Per pixel used: grouping level, surroundings' energy, the 15 responses (float32),
    jackknife group, and the centre value; plus the clip limits and what the data reach."""
    from numpy.lib.stride_tricks import sliding_window_view

    axes, yx, lead, n_planes = _planes(image, axes)
    clip_lim = _clip_limits(image, clip)
    basis = np.asarray(_HIGH_PASS).reshape(len(_HIGH_PASS), -1).T  # (49, 15)
    half = _HIGH_PASS[0].shape[0] // 2
    out = {k: [] for k in ("g", "lv", "r", "group", "value")}
    extremes = []
    for plane in _measured_planes(image, yx, lead, n_planes, max_planes, max_pixels,
                                  progress):
        d2, _, g, _, ok, y = _plane_statistics(plane)
        if np.isfinite(y).any():
            extremes.append((np.nanmin(y), np.nanmax(y)))
        rows, cols = np.nonzero(ok)
        win = sliding_window_view(y, (2 * half + 1, 2 * half + 1))
        r = np.empty((rows.size, basis.shape[1]), np.float32)
        for a in range(0, rows.size, _PIXEL_BATCH):
            sl = slice(a, a + _PIXEL_BATCH)
            r[sl] = win[rows[sl] - half, cols[sl] - half].reshape(-1, basis.shape[0]) @ basis
        out["r"].append(r)
        out["g"].append(g[ok])
        out["lv"].append(_surroundings(d2)[ok])
        out["value"].append(y[ok])
        side = _JACKKNIFE_SIDE
        block = _measure._JACKKNIFE_BLOCK
        out["group"].append((((rows - _MARGIN) // block) % side) * side
                            + ((cols - _MARGIN) // block) % side)
    px = {k: np.concatenate(v) for k, v in out.items()}
    if isinstance(clip, str):
        clip_lim = _detected_limits(px["value"], clip_lim)
    reached = [False, False]
    if clip_lim is not None:
        reached = [any(lo <= clip_lim[0] for lo, _ in extremes),
                   any(hi >= clip_lim[1] for _, hi in extremes)]
    return px, _reached_limits(clip_lim, reached)


def _select_single_image(px, limits, n_bins=40):
    """The mask of the smooth pixels away from reached clipping limits."""
    g, lv = px["g"], px["lv"]
    pv = _robust_variance(g, lv, n_bins)
    use = lv < _calibration()["threshold"] * pv
    if limits is not None:  # truncated noise near a limit is not Gaussian: far from it only
        sd = 3 * np.sqrt(pv)
        use &= (g > limits[0] + sd) & (g < limits[1] - sd)
    return use


def _band_sums(r, band, group, n_bands, n_groups, total):
    """``total(rows of r)`` (a vector) and the pixel count for every band and group."""
    S, N = None, np.zeros((n_bands, n_groups))
    for b in range(n_bands):
        for q in range(n_groups):
            sel = (band == b) & (group == q)
            if sel.any():
                t = total(r[sel].astype(np.float64))
                if S is None:
                    S = np.zeros((n_bands, n_groups, t.size))
                S[b, q], N[b, q] = t, sel.sum()
    return S, N


def _frame_moments(stack, axis, clip, shape, progress=None):
    """Photon transfer: per pixel, the temporal mean and the mean products of consecutive
    frame differences at every lag (halved: the noise covariance), with the jackknife group."""
    nt = np.shape(stack)[axis]
    if nt < 3:
        raise ValueError(f"photon transfer needs at least 3 frames along axis {axis}, got {nt}")
    lags = _lags(shape)
    clip_lim = _clip_limits(stack, clip)
    ay, ax = shape[0] - 1, shape[1] - 1
    prev = acc = total = bad = None
    _report(progress, 0, nt)
    for t in range(nt):
        f = _frame(stack, axis, t)
        if f.ndim < 2:
            raise ValueError("each frame must be at least 2-D (Y, X) to estimate a kernel")
        f = f.reshape((-1,) + f.shape[-2:])
        if min(f.shape[-2:]) <= 2 * max(ay, ax) + 8:
            raise ValueError(f"frames of {f.shape[-2:]} are too small for a {shape} kernel")
        if acc is None:
            acc = np.zeros((len(lags),) + f.shape)
            total, bad = np.zeros(f.shape), np.zeros(f.shape, bool)
            if isinstance(clip, str):
                finite = f[np.isfinite(f)]
                clip_lim = _detected_limits(finite, clip_lim)
        total += f
        bad |= ~np.isfinite(f)
        if clip_lim is not None:
            bad |= (f <= clip_lim[0]) | (f >= clip_lim[1])
        if prev is not None:
            d = f - prev
            h, w = d.shape[-2:]
            for i, (dy, dx) in enumerate(lags):  # d(p) d(p + lag) where both exist
                j0, j1 = max(0, -dx), w - max(0, dx)
                acc[i, :, :h - dy, j0:j1] += d[:, :h - dy, j0:j1] * d[:, dy:, j0 + dx:j1 + dx]
        prev = f
        _report(progress, t + 1, nt)
    acc /= 2 * (nt - 1)
    mean = total / nt
    # a pixel is used where it and every pixel the lags reach are finite and never clipped
    from scipy import ndimage as ndi

    bad = ndi.maximum_filter(bad, size=(1, 2 * ay + 1, 2 * ax + 1), mode="constant", cval=1)
    ok = ~bad
    h, w = ok.shape[-2:]
    inside = np.zeros((h, w), bool)  # every lag stays in the frame
    inside[:h - ay, ax:w - ax] = True
    ok &= inside
    if not ok.any():
        raise ValueError("no pixel is finite and unclipped in every frame with its neighbours")
    idx = np.nonzero(ok)
    side = _JACKKNIFE_SIDE
    block = _measure._JACKKNIFE_BLOCK
    group = ((idx[1] // block) % side) * side + (idx[2] // block) % side
    return mean[idx], acc[(slice(None),) + idx].T, group, nt


# ---------------------------------------------------------------------------------------------
# the estimator


def estimate_noise_kernel(image, *, shape=3, white=0.0, axes: str | None = None,
                          clip="auto", frames_axis: int | None = None, max_planes: int = 32,
                          max_pixels: int = _MAX_PIXELS,
                          progress: ProgressFn | None = None) -> NoiseKernel:
    """Estimate the correlation kernel of the noise from the data.

    Parameters
    ----------
    image : array_like
        One noisy image or stack (2-D, 3-D, time-lapse; numpy, dask or zarr), or with
        ``frames_axis`` repeated frames of a static scene.
    shape : int or (int, int)
        Odd size(s) of the kernel, e.g. 3 or ``(1, 3)`` (along X only, a scan line).
    white : float or None
        Variance of white noise added after the kernel (the Gaussian part of a correlated
        mixture, read noise): a known value (default 0, all noise goes through the kernel),
        or None to estimate it, which needs noise whose correlated part changes with the
        level.
    axes : str, optional
        Axes letters (TCZYXS) of a single image or stack.
    clip : "auto", None or (low, high)
        Clipping limits: levels near a reached limit are not used
        (:func:`scoredenoise.noise_level_function`).
    frames_axis : int, optional
        ``image`` holds repeated frames of a static scene along this axis: the covariances
        come from differences of consecutive frames, free of any structure.
    max_planes, max_pixels : int
        At most this many planes, and pixels in all, are measured (single-image; about 80
        bytes are held per pixel).
    progress : callable, optional
        ``progress(done, total)`` after each plane, tile or frame measured; returning False
        stops with :class:`scoredenoise.Cancelled`.

    Returns
    -------
    NoiseKernel
        ``.kernel`` (sum 1) with its ``.stderr``; ``.summary()``.

    Examples
    --------
    >>> import numpy as np
    >>> from scoredenoise.noise import get_noise_model, PAPER_KERNEL
    >>> x = np.tile(np.linspace(20, 200, 256), (256, 1))
    >>> y = get_noise_model("gaussian-correlated", sigma=10.0).sample(x, rng=0)
    >>> est = estimate_noise_kernel(y, shape=3)
    >>> bool(np.allclose(est.kernel, PAPER_KERNEL, atol=0.01))
    True
    """
    if white is not None:
        white = float(white)
        if not (white >= 0 and math.isfinite(white)):
            raise ValueError(f"white must be a variance >= 0 or None (estimate it), got "
                             f"{white}")
    if max_pixels < _MIN_PIXELS:
        raise ValueError(f"max_pixels must be >= {_MIN_PIXELS} (a 256x256 image), got "
                         f"{max_pixels}")
    if frames_axis is None:
        shape = _check_shape(shape, _MAX_SIDE)
        px, limits = _single_image_moments(image, axes, clip, max_planes, max_pixels,
                                           progress)
        use = _select_single_image(px, limits)
        level, group, r = px["g"][use], px["group"][use], px["r"][use]
        del px
        A = _design(_HIGH_PASS, _lags(shape))
        iu = np.triu_indices(len(_HIGH_PASS))

        def spread(S_):  # Var(r_j r_l) = S_jj S_ll + S_jl^2, over the independent samples
            d = S_[:, iu[0] == iu[1]]
            return np.sqrt((d[:, iu[0]] * d[:, iu[1]] + S_ ** 2) / _DOF)
        method = "single-image"
    else:
        shape = _check_shape(shape)
        level, r, group, nt = _frame_moments(image, frames_axis, clip, shape, progress)
        A = np.eye(len(_lags(shape)))
        # mean of m = nt - 1 products of differences sharing frames: (3m - 1) / m^2 per pixel
        m = nt - 1

        def spread(S_):  # Var(d(p) d(p + lag)) / 4 = C0^2 + C_lag^2, over m shared frames
            return np.sqrt((S_[:, :1] ** 2 + S_ ** 2) * (3 * m - 1) / m ** 2)
        method = "photon-transfer"
    n_used = int(level.size)
    n_bands = min(_BANDS, n_used // _MIN_BIN)
    if n_bands < 1 or n_used < 4 * _MIN_BIN:
        raise ValueError(f"too few usable pixels ({n_used}) to estimate a kernel: use a larger "
                         f"image, more planes or frames, or check the clip limits")
    _, band = np.unique(_bands(level, n_bands), return_inverse=True)  # ties: no empty band
    n_bands = int(band.max()) + 1
    n_groups = _JACKKNIFE_SIDE ** 2
    if method == "single-image":  # the products of the responses (upper triangle)
        S, N = _band_sums(r, band, group, n_bands, n_groups, lambda rb: (rb.T @ rb)[iu])
    else:  # the products are already per pixel
        S, N = _band_sums(r, band, group, n_bands, n_groups, lambda rb: rb.sum(0))
    levels = np.array([level[band == b].mean() for b in range(n_bands)])
    del r

    def fit(S_, N_):
        keep = N_ > 0
        return _fit(S_[keep] / N_[keep, None], N_[keep], A, spread, shape, white)

    k, var, w, chi2 = fit(S.sum(1), N.sum(1))
    reps = []
    for q in range(n_groups):
        if N[:, q].sum() == 0:
            continue
        try:
            reps.append(fit(S.sum(1) - S[:, q], N.sum(1) - N[:, q]))
        except NoiseModelError:
            continue
    K = len(reps)
    if K >= 8:
        ks = np.array([rp[0] for rp in reps])
        se = np.sqrt((K - 1) / K * np.sum((ks - ks.mean(0)) ** 2, 0))
        ws = np.array([rp[2] for rp in reps])
        w_se = float(np.sqrt((K - 1) / K * np.sum((ws - ws.mean()) ** 2))) \
            if white is None else 0.0
    else:
        se, w_se = np.full(k.shape, np.nan), (np.nan if white is None else 0.0)
    notes = []
    try:
        Correlation(k)
    except NoiseModelError as exc:
        raise NoiseModelError(f"the estimated kernel {np.round(k, 4).tolist()} is not usable: "
                              f"{exc}") from None
    if chi2 > 4:
        notes.append(f"the kernel's shape does not explain the measured covariances (reduced "
                     f"chi2 {chi2:.1f}): try a larger shape, or the noise is not of this kind")
    if white is None and w_se > 0.5 * max(w, 1e-300):
        notes.append("the white part is not separable from the kernel here (its variance "
                     "has a large error): give white= if it is known")
    return NoiseKernel(k, se, w, w_se, levels, var, chi2, method, n_used,
                       white_given=white is not None, notes=notes,
                       replicates=[rp[0] for rp in reps])
