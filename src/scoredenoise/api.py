"""Function-first public API: ``train``, ``denoise``, ``load_model``."""

from __future__ import annotations

import warnings

import numpy as np

from . import _axes
from ._progress import ProgressFn
from .estimate import NoiseEstimate
from .model import ScoreModel, score_sigma_a
from .noise import NoiseModel, get_noise_model, noise_model_from_dict

__all__ = ["denoise", "resolve_noise_model", "resolve_noise_models", "effective_noise_model",
           "provenance", "ImplausibleSolutionWarning", "UNITS"]

#: what ``denoise(..., units=)`` returns: the clean image in the input's units (the camera
#: offset included, comparable with the raw data and frame averages), or the signal above
#: the offset (what the noise model's solve gives)
UNITS = ("input", "signal")


def check_units(units: str, kind: str = "score") -> str:
    """``units`` validated for a model of ``kind``."""
    if units not in UNITS:
        raise ValueError(f"units must be one of {UNITS}, got {units!r}")
    if units == "signal" and kind != "score":
        raise ValueError("units='signal' (the signal above the camera offset) needs a noise "
                         "model; a denoiser model returns the image in the input's units")
    return units


class ImplausibleSolutionWarning(UserWarning):
    """A solution with pixels far outside the data's range: the score model does not fit
    the image (train longer, or on images like it), or the noise model is wrong."""


def _check_plausible(image: np.ndarray, out: np.ndarray) -> None:
    """Warn when pixels of the solution lie more than the data's range outside that range.

    Such values are not a posterior mean of anything the data allow. They come from a score
    network that is wrong for this image, amplified by the solve (the Poisson rule
    exponentiates the score times the gain), or from wrong noise parameters.
    """
    lo, hi = float(np.nanmin(image)), float(np.nanmax(image))
    span = max(hi - lo, 1e-12)
    bad = (out > hi + span) | (out < lo - span)
    n = int(np.count_nonzero(bad))
    if n:
        warnings.warn(
            f"{n} of {out.size} pixels ({n / out.size:.2%}) of the solution lie more than the "
            f"data's range outside it (solution {float(np.nanmin(out)):.4g} to "
            f"{float(np.nanmax(out)):.4g}, data {lo:.4g} to {hi:.4g}): the score model does "
            f"not fit this image (train longer, or on images like it) or the noise model's "
            f"parameters are wrong (check them with scoredenoise.estimate_noise)",
            ImplausibleSolutionWarning, stacklevel=3)


def resolve_noise_model(noise_model, **params) -> NoiseModel:
    """A NoiseModel from an instance, a registered name (with ``params``), a dict, or a
    :class:`~scoredenoise.NoiseEstimate` (its ``noise_model``)."""
    if isinstance(noise_model, NoiseEstimate):
        noise_model = noise_model.noise_model
    if isinstance(noise_model, NoiseModel):
        return noise_model.replace(**params) if params else noise_model
    if isinstance(noise_model, dict):
        nm = noise_model_from_dict(noise_model)
        return nm.replace(**params) if params else nm
    if isinstance(noise_model, str):
        return get_noise_model(noise_model, **params)
    raise TypeError(f"noise_model must be a NoiseModel, a registered name, a dict or a "
                    f"NoiseEstimate (or a list of them, one per channel), got "
                    f"{type(noise_model).__name__}")


def resolve_noise_models(noise_model, **params):
    """:func:`resolve_noise_model`, or a tuple of NoiseModels for a list or tuple (one per
    channel of the image, in order)."""
    if isinstance(noise_model, (list, tuple)):
        if not noise_model:
            raise ValueError("noise_model is an empty list; give one noise model per channel")
        return tuple(resolve_noise_model(m, **params) for m in noise_model)
    return resolve_noise_model(noise_model, **params)


def _check_channels(noise_model, shape, axes: str) -> None:
    """A list of noise models must have one per channel (axis C) of an image of ``shape``."""
    if not isinstance(noise_model, tuple):
        return
    n = shape[axes.index("C")] if "C" in axes else 1
    if len(noise_model) != n:
        k = len(noise_model)
        raise ValueError(f"{k} noise model{'s' if k != 1 else ''} given (one per channel), but "
                         f"the image has {n} channel{'s' if n != 1 else ''} (axes {axes!r}); "
                         f"give one per channel, or a single noise model for all")


def effective_noise_model(model: ScoreModel, noise_model, channel: int = 0,
                          sigma_a: float | None = None) -> NoiseModel:
    """The noise model to solve with for one channel.

    ``noise_model`` is one NoiseModel for every channel, or a tuple of them, one per channel.
    The network learned the score of the data plus Gaussian noise: the extra training noise
    (``model.extra_noise``) and the AR-DAE perturbation sigma_a the score was evaluated at
    (normalised units, times the channel's scale; the model's default unless given). Both are
    removed by solving with the noise model plus that Gaussian (a mixture).
    """
    if isinstance(noise_model, tuple):
        noise_model = noise_model[channel]
    sigma = model.smoothing_sigma(channel, sigma_a)
    return noise_model.plus_gaussian(sigma) if sigma else noise_model


def provenance(model: ScoreModel, noise_model=None, *, sigma_a: float | None = None,
               units: str | None = None, source=None, kind: str = "denoised",
               model_source=None, **extra) -> dict:
    """What a result records about how it was made (the ``"scoredenoise"`` entry of a napari
    layer's metadata; JSON-ready).

    ``kind``: "denoised", "posterior std", ...; ``noise_model``: the one chosen (None for a
    direct denoiser, which has none: its ``method`` is recorded instead); ``sigma_a``: where
    the score was evaluated. For a score model both the chosen noise model and the one
    solved with (``noise_model``: the chosen one plus the training noise and sigma_a) are
    recorded. ``model_source``: the model's file or name; ``extra``: anything else.

    Examples
    --------
    >>> md = scoredenoise.provenance(model, nm, sigma_a=0.03, units="input",
    ...                              source="cells")                        # doctest: +SKIP
    """
    from . import __version__

    md = {"source": source, "kind": kind, "version": __version__, "model": model_source,
          "model_kind": model.kind}
    if model.kind != "score":
        md.update(noise_model=None, noise_model_chosen=None,
                  method=model.meta.get("training", {}).get("objective"))
    elif noise_model is not None:
        nm = resolve_noise_models(noise_model)
        chosen = [m.to_dict() for m in nm] if isinstance(nm, tuple) else nm.to_dict()
        solved = [effective_noise_model(model, nm, c, sigma_a).to_dict()
                  for c in range(len(nm))] if isinstance(nm, tuple) else \
            effective_noise_model(model, nm, 0, sigma_a).to_dict()
        md.update(noise_model=solved, noise_model_chosen=chosen, sigma_a=sigma_a)
    if units is not None:
        md["units"] = units
    md.update(extra)
    return md


def _has_operator(noise_model) -> bool:
    """Whether a noise model (or any of a tuple, one per channel) has a correlation operator
    A, which couples neighbouring pixels (chunks then need a halo for it)."""
    models = noise_model if isinstance(noise_model, tuple) else (noise_model,)
    return any((getattr(nm, "operator", None) or
                getattr(getattr(nm, "base", None), "operator", None)) is not None
               for nm in models)


def _solve_canonical(model: ScoreModel, nm: NoiseModel, y: np.ndarray, s: np.ndarray,
                     axes: str, units: str = "input", sigma_a: float | None = None):
    """Solve per channel, with samples first and spatial axes last (A acts on those); in the
    input's units (the camera offset added back) or as the signal above the offset. ``s``
    was evaluated at ``sigma_a`` (the model's default if None)."""
    yc, info = _axes.to_canonical(y, axes, model.dims)
    sc, _ = _axes.to_canonical(np.asarray(s), axes, model.dims)
    out = np.empty_like(yc, dtype=np.float32)
    for c in range(yc.shape[1]):
        nm_c = effective_noise_model(model, nm, c, sigma_a)
        out[:, c] = nm_c.solve(yc[:, c], sc[:, c])
        if units == "input":
            out[:, c] += getattr(nm_c, "offset_value", 0.0)
    return _axes.from_canonical(out, info)


def _given_sigma_a(model: ScoreModel, score, sigma_a) -> float | None:
    """The sigma_a a given score was evaluated at: its own (a :class:`Score` or a lazy
    score from ``model.score``), else ``sigma_a`` when a number, else the model's default
    (None)."""
    own = score_sigma_a(score)
    if own is not None:
        return own
    if model.conditioned and sigma_a not in ("auto", None):
        return float(sigma_a)
    return None


def _offsets(model: ScoreModel, nm, axes: str, shape) -> np.ndarray:
    """The camera offset of each channel, broadcastable against an image of ``shape``."""
    models = nm if isinstance(nm, tuple) else (nm,)
    off = np.array([getattr(m, "offset_value", 0.0) for m in models], np.float32)
    if off.size == 1 or "C" not in axes:
        return off[:1].reshape((1,) * len(shape))
    return off.reshape([-1 if a == "C" else 1 for a in axes])


def denoise(image, model: ScoreModel, noise_model="gaussian", *, score=None,
            axes: str | None = None, units: str = "input", sigma_a="auto", device="auto",
            precision: str = "fp32", tile: int | None = None,
            progress: ProgressFn | None = None, tta: bool = False, **params):
    """Denoise ``image`` with a trained model and a noise model.

    Parameters
    ----------
    image : numpy.ndarray or dask.array.Array
        Noisy image or stack, in the same units as the noise-model parameters. A dask array
        gives a lazy dask array back, computed chunk by chunk.
    model : ScoreModel
        From :func:`scoredenoise.train` or :func:`scoredenoise.load_model`.
    noise_model : NoiseModel, str, dict, NoiseEstimate, or a list of them
        The noise model (see ``scoredenoise noise-models``); a name takes ``**params``. A
        list gives one per channel (axis C) when the channels' noise differs (confocal
        detectors with their own gains), e.g. the list that
        ``scoredenoise.estimate_noise(image, axes="CYX")`` returns; ``**params`` then apply
        to each.
    score : array, optional
        A score computed before with ``model.score(image)`` (or ``model.evaluate(image)``,
        which for a direct denoiser is the result itself): the network is then not run
        again, so switching noise model or parameters costs only the (cheap) solve. With a
        dask image, a lazy score from ``model.score(dask_image, cache=...)`` works too. The
        smoothing the score was evaluated at (its ``sigma_a``) is removed whatever noise
        model it is solved with; a plain array is taken to be at ``sigma_a`` (a number) or
        the model's ``sigma_a_default``.
    axes : str, optional
        Axes of ``image`` (TCZYXS letters); default: the model's training axes when the number
        of dimensions matches, else inferred.
    units : {"input", "signal"}
        ``"input"`` (default): the clean image in the input's units, comparable with the raw
        data and frame averages (a camera model's ``offset`` included). ``"signal"``: the
        signal above the camera offset (``poisson-gaussian``'s x; the same as ``"input"``
        for models without an offset).
    sigma_a : "auto" or float
        Where a sigma-conditioned score network is evaluated (:meth:`ScoreModel.score`):
        ``"auto"`` (default) chooses it for this image and noise model by Stein's unbiased
        risk estimate (:func:`scoredenoise.select_sigma_a`); a number (normalised units)
        sets it. Unconditioned models have a fixed one.
    device, precision, tile, progress
        Passed to :meth:`ScoreModel.score`.
    tta : bool
        Average the network's output over the 8 rotations and flips of the Y-X plane
        (test-time augmentation): 8x the network's cost (sigma_a is chosen without it), for
        +0.1 to +0.3 dB on the real sets of docs/benchmarks.md. Ignored with ``score=``.
    **params
        Noise-model parameters, e.g. ``gain=2.0, offset=100, read_noise=3``.

    Returns
    -------
    numpy.ndarray (float32) or dask.array.Array
        The denoised image, same shape as ``image``.

    Warns
    -----
    ImplausibleSolutionWarning
        (in-memory images) When pixels of the solution lie more than the data's range outside
        it: the score model does not fit the image or the noise parameters are wrong.

    Examples
    --------
    >>> model = scoredenoise.train(noisy, steps=1000)                       # doctest: +SKIP
    >>> s = model.score(noisy)                                               # doctest: +SKIP
    >>> a = scoredenoise.denoise(noisy, model, "poisson-gaussian", score=s,
    ...                          gain=2.0, offset=100.0, read_noise=3.0)     # doctest: +SKIP
    >>> b = scoredenoise.denoise(noisy, model, "poisson-gaussian", score=s,
    ...                          gain=2.5, offset=100.0, read_noise=3.0)     # doctest: +SKIP

    Two channels with their own noise, each estimated from the image:

    >>> est = scoredenoise.estimate_noise(stack, axes="CYX")  # a list  # doctest: +SKIP
    >>> c = scoredenoise.denoise(stack, model2, est, axes="CYX")         # doctest: +SKIP
    """
    check_units(units, model.kind)
    if model.meta.get("training", {}).get("objective") == "prior":
        raise ValueError("this model is a prior (the score of clean images, trained with "
                         "objective='prior'): it draws posterior samples "
                         "(scoredenoise.sample_posterior); denoise with a score model trained "
                         "on the noisy images")
    if model.kind != "score" and score is not None:  # a denoiser's output: the result
        if tuple(np.shape(score)) != tuple(np.shape(image)):
            raise ValueError(f"score has shape {tuple(np.shape(score))} but the image "
                             f"{tuple(np.shape(image))}; compute it with model.evaluate(image)")
        return score if type(score).__module__.startswith("dask") else \
            np.asarray(score, dtype=np.float32)
    if hasattr(image, "dask") or type(image).__module__.startswith("dask"):
        from ._chunked import denoise_dask, solve_dask

        nm = resolve_noise_models(noise_model, **params) if model.kind == "score" else None
        if score is not None and nm is not None:  # a lazy (cached) score: only solve
            if tuple(np.shape(score)) != tuple(image.shape):
                raise ValueError(f"score has shape {tuple(np.shape(score))} but the image "
                                 f"{tuple(image.shape)}; compute it with model.score(image)")
            return solve_dask(image, score, model, nm, axes=axes, units=units,
                              sigma_a=_given_sigma_a(model, score, sigma_a))
        sig = None
        if nm is not None and model.conditioned:  # chosen once for the whole array
            sig = model.resolve_sigma_a(image, sigma_a, nm, axes=axes, device=device,
                                        precision=precision)
        return denoise_dask(image, model, nm, axes=axes, device=device, precision=precision,
                            tile=tile, units=units, sigma_a=sig, tta=tta)
    image = np.asarray(image)
    axes = model.resolve_axes(axes, image.ndim)
    if model.kind == "denoiser":
        return model.predict(image, axes=axes, device=device, precision=precision, tile=tile,
                             progress=progress, tta=tta)
    nm = resolve_noise_models(noise_model, **params)
    _check_channels(nm, image.shape, axes)
    if score is None:
        score = model.score(image, axes=axes, sigma_a=sigma_a, noise_model=nm, device=device,
                            precision=precision, tile=tile, progress=progress, tta=tta)
    elif np.shape(score) != image.shape:
        raise ValueError(f"score has shape {np.shape(score)} but the image {image.shape}; "
                         f"compute it with model.score(image)")
    out = _solve_canonical(model, nm, image.astype(np.float32, copy=False),
                           np.asarray(score, dtype=np.float32), axes, units,
                           _given_sigma_a(model, score, sigma_a))
    _check_plausible(image, out if units == "input" else out + _offsets(model, nm, axes,
                                                                          image.shape))
    return out.astype(np.float32, copy=False)
