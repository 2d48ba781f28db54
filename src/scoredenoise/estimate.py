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
from ._measure import (
    _HIGH_PASS,
    _MAX_PIXELS,
)
from ._progress import ProgressFn
from .estimate_kernel import estimate_noise_kernel
from .nlf import (  # noqa: F401 (public here too: their old home)
    _POOR_FIT,
    MAX_PIXELS,
    NoiseLevelFunction,
    _chi2_scale,
    _correlation_factor,
    _part,
    noise_level_function,
)
from .noise import NoiseModel, NoiseModelError
from .photon import photon_transfer
from .solve import resolve_noise_model

__all__ = [
    "NoiseLevelFunction",
    "NoiseEstimate",
    "noise_level_function",
    "photon_transfer",
    "fit_noise_level",
    "estimate_noise",
    "NoiseToEstimate",
]


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


@dataclass(frozen=True)
class NoiseToEstimate:
    """A noise model whose parameters are estimated from each image it is used on, those
    in ``known`` kept fixed: what a batch hands on when every file gets its own estimate
    (``scoredenoise denoise --estimate-noise``; ``denoise_to_file(..., estimate_noise=True)``).

    Examples
    --------
    >>> spec = NoiseToEstimate("poisson-gaussian", {"offset": 100.0})
    >>> est = spec.estimate(stack, axes="ZYX")                 # doctest: +SKIP
    >>> scoredenoise.denoise_to_file("a.tif", "a_out.tif", model, spec)  # doctest: +SKIP
    """

    name: str = "poisson-gaussian"
    known: dict = field(default_factory=dict)

    def __post_init__(self):
        names = {p.name for p in resolve_noise_model(self.name).parameters()}
        unknown = sorted(set(self.known) - names)
        if unknown:
            raise ValueError(f"{self.name} has no parameter {', '.join(unknown)}; its "
                             f"parameters are {', '.join(sorted(names))}")

    def estimate(self, image, *, axes: str | None = None,
                 progress: ProgressFn | None = None) -> NoiseEstimate | list[NoiseEstimate]:
        """:func:`estimate_noise` of ``image`` (one estimate per channel with a C axis)."""
        return estimate_noise(image, self.name, axes=axes, progress=progress, **self.known)
