"""The solve and what surrounds it: the noise model a score is solved with (the chosen one
plus the training smoothing and sigma_a), the per-channel solve, the plausibility check, and
the provenance a result records. Below the public API, the chunked engine and the sigma_a
selection, which all solve."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from . import _axes
from ._version import __version__
from .noise import NoiseModel, get_noise_model, noise_model_from_dict

if TYPE_CHECKING:  # annotations only: the model sits above the solve
    from .model import ScoreModel

__all__ = ["resolve_noise_model", "resolve_noise_models", "effective_noise_model",
           "provenance", "ImplausibleSolutionWarning", "UNITS", "check_units",
           "score_sigma_a"]


def score_sigma_a(score) -> float | None:
    """The sigma_a a score was evaluated at (:class:`~scoredenoise.Score`, or a lazy score
    from :meth:`~scoredenoise.ScoreModel.score`), or None for a plain array; a
    :class:`~scoredenoise.SigmaA` as it is (its factor, and the photon map of a model in
    photo-electrons, with it)."""
    sig = getattr(score, "sigma_a", None)
    return None if sig is None else sig if hasattr(sig, "factor") else float(sig)


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
    if not isinstance(noise_model, (NoiseModel, dict, str)) and \
            isinstance(getattr(noise_model, "noise_model", None), NoiseModel):
        noise_model = noise_model.noise_model  # a NoiseEstimate (estimation sits above)
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
    the score was evaluated (a :class:`~scoredenoise.SigmaA`'s factor is recorded as
    ``score_factor``). For a score model both the chosen noise model and the one
    solved with (``noise_model``: the chosen one plus the training noise and sigma_a) are
    recorded. ``model_source``: the model's file or name; ``extra``: anything else.

    Examples
    --------
    >>> md = scoredenoise.provenance(model, nm, sigma_a=0.03, units="input",
    ...                              source="cells")                        # doctest: +SKIP
    """
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
        md.update(noise_model=solved, noise_model_chosen=chosen,
                  sigma_a=None if sigma_a is None else float(sigma_a),
                  # the factor of the score chosen with sigma_a (a SigmaA's; 1: none)
                  score_factor=float(getattr(sigma_a, "factor", 1.0)))
        pm = getattr(sigma_a, "photon_map", None)
        if pm is not None:  # a model in photo-electrons: the image's map
            md["photon_map"] = pm.to_dict()
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
        return sigma_a if hasattr(sigma_a, "factor") else float(sigma_a)
    return None


def _offsets(model: ScoreModel, nm, axes: str, shape) -> np.ndarray:
    """The camera offset of each channel, broadcastable against an image of ``shape``."""
    models = nm if isinstance(nm, tuple) else (nm,)
    off = np.array([getattr(m, "offset_value", 0.0) for m in models], np.float32)
    if off.size == 1 or "C" not in axes:
        return off[:1].reshape((1,) * len(shape))
    return off.reshape([-1 if a == "C" else 1 for a in axes])
