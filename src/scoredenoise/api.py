"""Function-first public API: ``train``, ``denoise``, ``load_model``."""

from __future__ import annotations

import numpy as np

from ._chunked import denoise_dask, solve_dask
from ._progress import ProgressFn
from .model import ScoreModel

# the solve's pieces, public here as before (their home is .solve)
from .solve import (  # noqa: F401
    UNITS,
    ImplausibleSolutionWarning,
    _check_channels,
    _check_plausible,
    _given_sigma_a,
    _has_operator,
    _offsets,
    _solve_canonical,
    check_units,
    effective_noise_model,
    provenance,
    resolve_noise_model,
    resolve_noise_models,
)

__all__ = ["denoise", "resolve_noise_model", "resolve_noise_models", "effective_noise_model",
           "provenance", "ImplausibleSolutionWarning", "UNITS"]


def denoise(image, model: ScoreModel, noise_model="gaussian", *, score=None,
            axes: str | None = None, units: str = "input", sigma_a="auto", device="auto",
            precision: str = "fp32", tile: int | None = None,
            progress: ProgressFn | None = None, tta: bool | str = "auto", **params):
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
    tta : bool or "auto"
        Average the network's output over the 8 rotations and flips of the Y-X plane
        (test-time augmentation): 8x the network's cost (sigma_a is chosen without it), for
        +0.1 to +0.3 dB on the real sets of docs/benchmarks.md. ``"auto"`` (default): on for
        networks small enough that the 8 passes cost at most 1.5 of the default network's
        (:attr:`ScoreModel.tta_default`: the small preset that ``train`` picks for
        photon-starved data). Ignored with ``score=``.
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
    tta = model.resolve_tta(tta)
    if hasattr(image, "dask") or type(image).__module__.startswith("dask"):
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
