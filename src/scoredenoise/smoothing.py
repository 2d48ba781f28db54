"""Where a sigma-conditioned score network is evaluated: sigma_a chosen per image by SURE.

A sigma-conditioned score network (the default, :func:`scoredenoise.train`) learns the score
of the data smoothed by a Gaussian of any standard deviation sigma_a in its training range
(normalised units, the data's range about 1). The solve removes that smoothing exactly, as
part of the noise model (a mixture), so every sigma_a gives a denoiser. Small sigma_a removes
little but asks for the score where it is hardest to learn; large sigma_a gives an accurate
score of a smoother density, at the price of treating the observed image as noisier than it
is. Where the balance lies depends on the data: 0.02-0.05 on FMD confocal frames, 0.1-0.35 on
photon-starved widefield frames (docs/training.md).

:func:`select_sigma_a` measures it on the image itself, with Stein's unbiased risk estimate
for independent noise of known variance v(y):

    R(sigma_a) = mean[(x - y)^2 - v(y) + 2 v(y) dx/dy],

where x is the solve of the noise model (plus the smoothing) with the score at sigma_a, and
the divergence dx/dy is measured by one more network pass at y + eps b (b random +-1; eps one
step of integer data, which keeps the data on their lattice). Each candidate costs two network
passes on a sample of at most ``max_pixels`` pixels; the risk is minimised over a log grid
and then twice between the best and its neighbours (10 candidates, 20 passes).

With sigma_a the same estimate chooses a factor of the score (0.5-1.25, solves of the two
passes already made): solving with the score of the data smoothed by sigma_a treats the
image as noisier than it is and shrinks it more than the posterior mean does
(:class:`SigmaA`), and the network's score can be off in scale; a factor below 1 undoes
either. The two are one choice: each candidate sigma_a is scored at its best factor (found
by :func:`search_factors`: at most 10 of the 16 factors' risks, the whole grid's pick where
the risk falls and then rises along the factors), so a larger sigma_a whose extra shrinkage
the factor undoes can win. Measured on the real sets with the default
models (docs/training.md): the factor gained W2S +1.06 dB, the FMD pairs +0.53, FMD field 4
+0.04 to +0.06, and choosing it with sigma_a W2S another +0.31 over three seeds; on 21 images
of the three sets the factor's pick was within 0.15 dB of the best factor on all but one. The noise
model is the one the image will be solved with, or else estimated from the sample
(:func:`scoredenoise.estimate_noise`, ``poisson-gaussian``); the selected sigma_a travels
with the score (:class:`scoredenoise.Score`), so re-solving the same score under another
noise model removes what the network was evaluated at.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from . import _axes
from ._progress import report
from .estimate import estimate_noise
from .solve import _has_operator, resolve_noise_models

__all__ = ["select_sigma_a", "SIGMA_RANGE", "SigmaA", "score_factor", "sure_risks",
           "photon_map_of"]

#: default training range of sigma_a of a sigma-conditioned score network (normalised units)
SIGMA_RANGE = (0.01, 0.5)
#: candidates of the selection, log-spaced over the training range, then REFINE rounds of
#: the two midpoints (in log) beside the best so far: 2.2x steps refined to 1.2x
GRID = 6
REFINE = 2
#: pixels of the image the selection looks at (planes evenly spaced, windows centred)
MAX_PIXELS = 2 ** 17
#: the factors of the score that SURE chooses from, with sigma_a (solves only: the network's
#: passes at each sigma_a are reused); 1 is the plain solve
FACTORS = tuple(round(0.5 + 0.05 * i, 2) for i in range(16))  # 0.5 ... 1.25
#: the factor search: every COARSE-th factor, then those between the best so far and its
#: coarse neighbours (10 of the 16 solves' pairs; the whole grid's minimum wherever the risk
#: falls and then rises along the factors, as it does: a smooth function of the factor)
COARSE = 3


class SigmaA(float):
    """A sigma_a (normalised units) chosen for an image, with the factor its score is used at.

    A float, so it goes wherever a sigma_a does; ``factor`` multiplies the network's score
    before the solve (:func:`score_factor`). Solving with the score of the data smoothed by
    sigma_a treats the image as noisier than it is, and so shrinks it towards the smoothed
    density's modes more than the posterior mean does: for a Gaussian prior of variance
    tau^2, noise variance v and smoothing s^2 (data units), the solve's shrinkage is
    (v + s^2) / (tau^2 + v + s^2) against the posterior mean's v / (tau^2 + v), and the
    factor v (tau^2 + v + s^2) / ((tau^2 + v) (v + s^2)) < 1 of the score makes it exact.
    :func:`select_sigma_a` chooses the factor with sigma_a, by the same risk estimate; a
    plain float is a factor of 1.

    ``photon_map``: for a model trained in photo-electrons (``units="photons"``), the
    :class:`~scoredenoise.PhotonMap` of the image the score is for (its offset and gain per
    channel, from its own noise estimate), so that every later pass and solve of that image
    uses the same map (:meth:`ScoreModel.bind`); None for a model in the data's units.

    Examples
    --------
    >>> from scoredenoise import SigmaA
    >>> sig = SigmaA(0.06, factor=0.85)
    >>> float(sig), sig.factor
    (0.06, 0.85)
    """

    factor: float
    photon_map: object

    def __new__(cls, value, factor: float = 1.0, photon_map=None):
        factor = float(factor)
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"factor must be a finite number > 0, got {factor}")
        obj = super().__new__(cls, value)
        obj.factor = factor
        obj.photon_map = photon_map
        return obj

    def __repr__(self) -> str:
        tail = "" if self.photon_map is None else f", photon_map={self.photon_map!r}"
        return f"SigmaA({float(self)!r}, factor={self.factor!r}{tail})"

    def __reduce__(self):  # pickles (dask workers) with its factor and map
        return (SigmaA, (float(self), self.factor, self.photon_map))


def photon_map_of(sigma_a):
    """The :class:`~scoredenoise.PhotonMap` a sigma_a carries (a :class:`SigmaA`'s), or None."""
    return getattr(sigma_a, "photon_map", None)


def score_factor(sigma_a) -> float:
    """The factor a score evaluated at ``sigma_a`` is used at: a :class:`SigmaA`'s, else 1."""
    return float(getattr(sigma_a, "factor", 1.0))


def sample_image(image, axes: str, dims: int, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A canonical ``(S, C, *spatial)`` float32 sample of ``image``: up to 4 evenly spaced
    planes (volumes for a 3-D network), each cut to a centred window, ``max_pixels`` in all.
    Reads only those windows of a lazy (dask, zarr) array."""
    perm, samples, ch, sp = _axes.canonical_order(axes, dims)
    shape = tuple(image.shape)
    n_s = math.prod(shape[a] for a in samples)
    picks = np.unique(np.linspace(0, max(n_s - 1, 0), min(n_s, 4)).round().astype(int))
    per = max(max_pixels // len(picks), 1)
    w = [shape[a] for a in sp]
    while math.prod(w) > per:  # shrink the longest axis, a tenth at a time: square-ish
        i = int(np.argmax(w))
        need = math.ceil(per / max(math.prod(w) // w[i], 1))
        w[i] = max(1, min(w[i] - 1, max(int(w[i] * 0.9), need)))
    window = [slice((shape[a] - n) // 2, (shape[a] - n) // 2 + n) for a, n in zip(sp, w)]
    out = []
    sample_shape = [shape[a] for a in samples]
    for p in picks:
        idx = [slice(None)] * len(shape)
        for a, i in zip(samples, np.unravel_index(int(p), sample_shape) if samples else ()):
            idx[a] = int(i)
        for a, w in zip(sp, window):
            idx[a] = w
        block = image[tuple(idx)]
        # in this thread: on a dask.distributed worker the default scheduler would ship a
        # file-backed graph to the cluster (as estimation reads its planes)
        block = np.asarray(block.compute(scheduler="synchronous") if hasattr(block, "compute")
                           else block)
        kept = [i for i in range(len(shape)) if i not in samples]
        order = ([kept.index(ch)] if ch is not None else []) + [kept.index(a) for a in sp]
        block = np.transpose(block, order)
        out.append(block if ch is not None else block[None])
    return np.stack(out).astype(np.float32)


def _noise_models(model, y: np.ndarray, noise_model):
    """One noise model per channel of the canonical sample ``y``: the given ones, or
    estimated from it; None where none can be had (no selection then)."""
    n_c = y.shape[1]
    if noise_model is not None:
        models = noise_model if isinstance(noise_model, tuple) else (noise_model,) * n_c
        return list(models)
    out = []
    for c in range(n_c):
        planes = y[:, c].reshape((-1,) + y.shape[-2:])
        ax = "ZYX" if planes.shape[0] > 1 else "YX"
        planes = planes if planes.shape[0] > 1 else planes[0]
        nm = None
        for family in ("poisson-gaussian", "gaussian"):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    nm = estimate_noise(planes, family, axes=ax).noise_model
                break
            except (ValueError, RuntimeError):
                continue
        if nm is None:
            return None
        out.append(nm)
    return out


def _variance(nm, y: np.ndarray) -> np.ndarray | None:
    """SURE's v(y): the noise variance at each pixel, unbiased for the models whose variance
    is linear in the mean (Gaussian, Poisson-Gaussian, EMCCD)."""
    try:
        v = np.asarray(nm.noise_level(y), np.float64)
    except NotImplementedError:
        return None
    return np.maximum(v, 1e-12)


def sure_risks(model, y: np.ndarray, sigmas, noise_models, *, device="auto",
               precision: str = "fp32", rng=0, progress=None, keep=None,
               probe=None) -> np.ndarray:
    """SURE of the denoised sample (mean over pixels, data units squared) at each sigma_a.

    ``y``: canonical ``(S, C, *spatial)`` float32; ``noise_models``: one per channel.
    ``keep``: a dict that receives, for each sigma_a, the network's two passes (at y and at
    the probe), for :func:`factor_risks` to reuse. ``probe``: the :class:`_Probe` of ``y``
    to use (else made from ``rng``)."""
    axes = "SC" + _axes.spatial_axes(model.dims)
    probe = _Probe(y, noise_models, rng) if probe is None else probe
    risks = []
    total, done = 2 * len(sigmas), 0
    for sig in sigmas:
        s = model.predict(y, axes=axes, sigma_a=sig, device=device, precision=precision)
        sb = model.predict(probe.yb, axes=axes, sigma_a=sig, device=device,
                           precision=precision)
        if keep is not None:
            keep[float(sig)] = (s, sb)
        done += 2
        report(progress, done, total)
        risks.append(probe.risk(model, sig, s, sb))
    return np.array(risks)


def factor_risks(model, y: np.ndarray, sigma_a: float, noise_models, factors=FACTORS, *,
                 device="auto", precision: str = "fp32", rng=0, passes=None) -> np.ndarray:
    """SURE of the denoised sample (as :func:`sure_risks`) at one sigma_a, for the score
    multiplied by each of ``factors`` (all of them: :func:`select_sigma_a` searches fewer);
    ``passes``: that sigma_a's two network passes, kept by :func:`sure_risks` with the same
    ``rng`` (else computed)."""
    axes = "SC" + _axes.spatial_axes(model.dims)
    probe = _Probe(y, noise_models, rng)
    if passes is None:
        passes = (model.predict(y, axes=axes, sigma_a=sigma_a, device=device,
                                precision=precision),
                  model.predict(probe.yb, axes=axes, sigma_a=sigma_a, device=device,
                                precision=precision))
    s, sb = passes
    return np.array([probe.risk(model, sigma_a, f * s, f * sb) for f in factors])


def search_factors(risk_of, n: int = len(FACTORS), known=None, coarse: int = COARSE):
    """The index of the least risk among ``n`` factors, and that risk, from fewer
    evaluations of ``risk_of(i)``: every ``coarse``-th index (and the last), then the
    indices closer than ``coarse`` to the best so far. ``known``: risks already measured
    ``{index: risk}``, used as they are. Where the risks fall and then rise along the
    indices, this is the least of all ``n``; (None, inf) where no risk is finite."""
    r = dict(known or {})

    def best():
        finite = {i: v for i, v in r.items() if np.isfinite(v)}
        return min(finite, key=finite.get) if finite else None

    for i in sorted(set(range(0, n, coarse)) | {n - 1}):
        if i not in r:
            r[i] = risk_of(i)
    b = best()
    if b is None:
        return None, np.inf
    for i in range(max(b - coarse + 1, 0), min(b + coarse, n)):
        if i not in r:
            r[i] = risk_of(i)
    b = best()
    return b, r[b]


class _Probe:
    """Stein's unbiased risk estimate of the solve on a canonical sample ``y``, with the
    divergence measured by one random +-1 probe (``yb = y + eps b``)."""

    def __init__(self, y, noise_models, rng):
        self.y, self.noise_models = y, noise_models
        integer = bool(np.all(y == np.round(y)))
        self.v = [_variance(nm, y[:, c].astype(np.float64))
                  for c, nm in enumerate(noise_models)]
        if any(vc is None for vc in self.v):
            raise ValueError("SURE needs the noise variance as a function of the mean")
        self.eps = 1.0 if integer else 0.05 * math.sqrt(float(np.median(np.concatenate(
            [vc.ravel() for vc in self.v]))))
        self.b = np.random.default_rng(rng).choice(np.array([-1.0, 1.0], np.float32),
                                                   size=y.shape)
        self.yb = y + np.float32(self.eps) * self.b

    def risk(self, model, sig, s, sb) -> float:
        y, yb, b, eps = self.y, self.yb, self.b, self.eps
        r = 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for c, nm in enumerate(self.noise_models):
                v = self.v[c]
                nm_c = nm.plus_gaussian(model.smoothing_sigma(c, sig))
                off = getattr(nm_c, "offset_value", 0.0)
                x = np.asarray(nm_c.solve(y[:, c], s[:, c]), np.float64) + off
                xb = np.asarray(nm_c.solve(yb[:, c], sb[:, c]), np.float64) + off
                # SURE needs data centred on x: noise with a mean of its own (E y = k x) is
                # divided by k, which divides its variance by k^2 and multiplies the
                # divergence by k (Rayleigh: k = 1.38 at sigma 0.3; 1 for noise of mean 0)
                k = float(nm_c.mean_gain)
                yc = (y[:, c].astype(np.float64) - off) / k + off
                div = b[:, c] * (xb - x) / eps
                r += float(np.mean((x - yc) ** 2 - v / k ** 2 + 2.0 * v * div / k))
        return r if np.isfinite(r) else np.inf


def select_sigma_a(model, image, noise_model=None, *, axes: str | None = None,
                   device="auto", precision: str = "fp32", max_pixels: int = MAX_PIXELS,
                   grid: int = GRID, factor: bool = True, progress=None) -> float:
    """The sigma_a at which to evaluate a sigma-conditioned score for ``image``, and the
    factor to use its score at.

    Parameters
    ----------
    model : ScoreModel
        A sigma-conditioned score model (for any other, its fixed ``sigma_a`` is returned).
    image : array_like
        The noisy image or stack (numpy, dask, zarr); only a sample of at most
        ``max_pixels`` pixels is read.
    noise_model : NoiseModel, str, dict, NoiseEstimate, or a list of them, optional
        The noise model the image will be solved with; default: estimated from the sample
        (``poisson-gaussian``, else ``gaussian``).
    grid : int
        Candidates, log-spaced over the model's training range, before the refinement (two
        network passes each on the sample).
    factor : bool
        Choose the factor of the score (:class:`SigmaA`) too, among ``FACTORS`` (0.5-1.25),
        together with sigma_a: each candidate sigma_a is scored at its best factor (solves
        of the passes already made, no network pass), so a larger sigma_a whose extra
        shrinkage the factor undoes can win. False: sigma_a alone, at factor 1.

    Returns
    -------
    SigmaA or float
        sigma_a in normalised units, as a :class:`SigmaA` that carries the chosen ``factor``
        (a float: it goes wherever a sigma_a does, and ``model.score``, ``denoise`` and
        ``denoise_to_file`` use its score at that factor; ``posterior_std`` keeps the
        network's own score, whose map docs/uncertainty.md calibrates). The model's
        ``sigma_a_default`` (a plain float, factor 1) where the risk cannot be measured: a
        noise model with a correlation operator A (the estimate assumes independent noise)
        or without a variance function, or no noise model estimable.

    Examples
    --------
    >>> sig = scoredenoise.select_sigma_a(model, noisy)                    # doctest: +SKIP
    >>> sig                                                                  # doctest: +SKIP
    SigmaA(0.066, factor=0.95)
    >>> s = model.score(noisy, sigma_a=sig)   # the network's score times 0.95  # doctest: +SKIP
    """
    if getattr(model, "units", "data") == "photons":  # in the image's units, with its map
        bound = model.bind(image, axes=axes)
        sig = select_sigma_a(bound, image, noise_model, axes=axes, device=device,
                             precision=precision, max_pixels=max_pixels, grid=grid,
                             factor=factor, progress=progress)
        return SigmaA(float(sig), score_factor(sig), bound.photon_map)
    if not model.conditioned:
        return model.sigma_a_default
    axes = model.resolve_axes(axes, len(np.shape(image)))
    y = sample_image(image, axes, model.dims, max_pixels)
    if noise_model is not None:
        noise_model = resolve_noise_models(noise_model)
        if _has_operator(noise_model):
            return model.sigma_a_default
    models = _noise_models(model, y, noise_model)
    if models is None or any(_variance(nm, y[:1, c]) is None for c, nm in enumerate(models)):
        return model.sigma_a_default
    lo, hi = model.sigma_range
    risk: dict[float, float] = {}
    passes: dict = {}  # sigma_a -> the network's two passes, for the factor's choice
    total = 2 * (grid + 2 * REFINE)  # network passes, for progress

    best_factor: dict[float, float] = {}
    probe = _Probe(y, models, 0)  # one divergence probe for every risk
    one = FACTORS.index(1.0)

    def _at_best_factor(sig, risk_at_1):
        s, sb = passes[sig]
        i, r = search_factors(lambda j: probe.risk(model, sig, FACTORS[j] * s,
                                                   FACTORS[j] * sb),
                              known={one: risk_at_1})
        if i is None:
            best_factor[sig] = 1.0
            return risk_at_1
        best_factor[sig] = FACTORS[i]
        return float(r)

    def measure(sigmas):
        def prog(done, _total):
            return None if progress is None else progress(2 * len(risk) + done, total)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r = sure_risks(model, y, sigmas, models, device=device, precision=precision,
                           progress=prog, keep=passes, probe=probe)
            if factor:  # each sigma_a at its best factor (solves only, no network pass)
                at_1, r = r, []
                for sig, rs in zip(sigmas, at_1):
                    report(prog, 2 * len(sigmas), total)  # a cancel is heard between them
                    r.append(_at_best_factor(float(sig), rs))
        risk.update(zip((float(v) for v in sigmas), r))

    measure(np.exp(np.linspace(math.log(lo), math.log(hi), grid)))
    for _ in range(REFINE):  # halve the log step around the best, twice
        keys = sorted(risk)
        i = int(np.argmin([risk[k] for k in keys]))
        measure([math.sqrt(keys[j] * keys[i]) for j in (i - 1, i + 1) if 0 <= j < len(keys)])
    if not np.any(np.isfinite(list(risk.values()))):
        return model.sigma_a_default
    best = min(risk, key=risk.get)
    return SigmaA(best, best_factor[best]) if factor else best
