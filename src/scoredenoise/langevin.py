"""Stochastic denoising: samples of the posterior p(x | y) by annealed Langevin dynamics
(Kawar, Vaksman and Elad 2021, Algorithm 1), for Gaussian noise of known std.

Each sample is one clean image consistent with the noisy one: where the data leave the image
ambiguous the samples differ, and their spread shows it; each sample's residual y - x is
noise-like (white, of std sigma), unlike the posterior mean's, which is smoother than any one
plausible image.

Why the self-supervised score model cannot drive it: Algorithm 1 needs the score of the
*clean* images smoothed by every noise level sigma_i between the data's sigma_0 and about 0,
grad log p(x + N(0, sigma_i^2)). Noisy images alone give the score of the data smoothed
further, grad log p(y + N(0, sigma_a^2)), whose noise level never falls below the data's own:
the levels below sigma_0 are not in them. So the prior is a separate model, trained on
high-SNR images (frame averages, or clean references) with ``train(clean, objective="prior")``:
the same sigma-conditioned network, trained by denoising score matching over sigma_i from
0.005 to 1 of the data range (as NCSN trains).

Camera (``poisson-gaussian``) noise is not Gaussian: it is made so by the generalized Anscombe
transform (its ``stabilise``), which turns the noisy image into t = m(x) + n with n close to
N(0, 1), m(x) = E[t | x] (``stabilise_clean``). The prior is then that of m(x), trained on
the transformed clean images (:func:`train_prior` with the camera's noise model; the model file
records the camera), Algorithm 1 runs in the transformed domain with sigma = 1, and each sample
is mapped back to ADU by the inverse of m (``unstabilise``): samples map to samples.

The posterior score at level sigma_i < sigma_0 (Kawar et al., Eq. 7):
s_i(x | y) = s_prior(x, sigma_i) + (y - x) / (sigma_0^2 - sigma_i^2); at each level ``T``
steps x <- x + a_i s_i + sqrt(2 a_i) z with a_i = eps sigma_i^2 / sigma_L^2, started at y.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._device import resolve_device
from ._progress import report as _report
from .model import SCORE_OUTPUT_SCALE, ScoreModel
from .noise import noise_model_from_dict
from .training import train

__all__ = ["sample_posterior", "train_prior", "annealed_langevin", "langevin_levels"]


#: Langevin steps at each level (the paper's T = 5). 10 was measured against it on Set12
#: (128 x 128 crops of images 1-6, 3 samples each, a prior of 1500 steps): it brought images
#: 2-4 from residuals 2-4 % below sigma to within 1.5 %, but took images 1, 5 and 6 from
#: within 1.5 % to 2-4.5 % above; all three of the paper's tests passed on 8 of 18 samples
#: with 5 and 5 of 18 with 10, at twice the cost (docs/uncertainty.md)
STEPS_PER_LEVEL = 5


def langevin_levels(sigma: float, sigma_min: float, ratio: float = 0.98) -> np.ndarray:
    """The noise levels sigma_1 > ... > sigma_L of Algorithm 1: geometric, ``ratio`` apart,
    from ``sigma * ratio`` (just below the data's ``sigma``) down to ``sigma_min``."""
    if not 0 < ratio < 1:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    if not 0 < sigma_min < sigma:
        raise ValueError(f"sigma_min must be in (0, sigma = {sigma:.4g}), got {sigma_min}")
    n = max(1, int(math.floor(math.log(sigma_min / sigma) / math.log(ratio))))
    return sigma * ratio ** np.arange(1, n + 1)


def check_prior(prior: ScoreModel) -> None:
    """Raise ValueError unless ``prior`` is a model of ``train(objective="prior")``."""
    obj = prior.meta.get("training", {}).get("objective")
    if not isinstance(prior, ScoreModel) or prior.kind != "score" or not prior.conditioned \
            or obj != "prior":
        raise ValueError(
            "sample_posterior needs the score of clean images at every noise level: train it "
            "on high-SNR images with scoredenoise.train(clean, objective='prior') (a "
            f"self-supervised score model learns the noisy data's score, got objective {obj!r})")


def _stabiliser(noise_model):
    """The noise model if it has a variance-stabilising transform, else None."""
    return noise_model if callable(getattr(noise_model, "stabilise_clean", None)) else None


def train_prior(images, *, noise_model=None, **train_kwargs) -> ScoreModel:
    """Train the prior of :func:`sample_posterior`: the score of clean images at every noise
    level (``train(images, objective="prior")``), on high-SNR images such as frame averages.

    Parameters
    ----------
    images : array or list of arrays
        Clean images, in the units of the noisy data to be sampled (ADU with the camera's
        offset for camera data).
    noise_model : NoiseModel, optional
        For camera noise (``poisson-gaussian``): the camera. The prior is then trained on the
        variance-stabilised images (``noise_model.stabilise_clean``) and the model file
        records the camera, so that :func:`sample_posterior` samples in that domain. None:
        the images as they are (Gaussian noise).
    **train_kwargs
        As for :func:`scoredenoise.train` (``steps``, ``preset``, ``seed``, ...).

    Examples
    --------
    >>> cam = scoredenoise.get_noise_model("poisson-gaussian", gain=3.8, offset=3.5,
    ...                                    read_noise=1.0)                  # doctest: +SKIP
    >>> prior = train_prior(averages, noise_model=cam, steps=3000)          # doctest: +SKIP
    """
    config = train_kwargs.get("config")
    objective = train_kwargs.pop("objective", None) or (
        config.objective if config is not None else "prior")
    if objective != "prior":
        raise ValueError(f"train_prior trains objective 'prior', got {objective!r}")
    stab = _stabiliser(noise_model)
    if noise_model is not None and stab is None and noise_model.name != "gaussian":
        raise ValueError(f"a prior for {noise_model.name} noise needs a variance-stabilising "
                         f"transform, which only poisson-gaussian has; give no noise model "
                         f"for gaussian noise")
    if stab is not None:
        imgs = images if isinstance(images, (list, tuple)) else [images]
        images = [stab.stabilise_clean(np.asarray(im, np.float32)).astype(np.float32)
                  for im in imgs]
    prior = train(images, objective="prior", **train_kwargs)
    if stab is not None:
        prior.meta["stabilised_by"] = stab.to_dict()
    return prior


def _prior_camera(prior: ScoreModel, noise_model):
    """The camera whose transformed domain the prior was trained in (None: the data's own
    units), checked against the ``noise_model`` given for sampling."""
    rec = prior.meta.get("stabilised_by")
    cam = None if rec is None else noise_model_from_dict(rec)
    if noise_model is None:
        return cam
    if _stabiliser(noise_model) is None:
        if noise_model.name != "gaussian":
            raise ValueError(f"posterior samples are derived for gaussian and (through its "
                             f"variance-stabilising transform) poisson-gaussian noise, not "
                             f"{noise_model.name}")
        if cam is not None:
            raise ValueError(f"this prior was trained on images stabilised for "
                             f"{_describe(cam)}; sample with that noise model (or none)")
        return None
    if cam is None:
        raise ValueError(f"{noise_model.name} noise needs a prior trained on stabilised "
                         f"images: train_prior(averages, noise_model=...) (CLI: train "
                         f"--objective prior --camera ...); this one was trained on the "
                         f"images as they are")
    a, b = cam.to_dict()["params"], noise_model.to_dict()["params"]
    if any(not np.isclose(a[k], b[k], rtol=0.01, atol=1e-6) for k in a):
        raise ValueError(f"this prior was trained for {_describe(cam)}, not "
                         f"{_describe(noise_model)}: sample with its camera or train a prior "
                         f"for this one")
    return noise_model


def _describe(nm) -> str:
    return f"{nm.name}(" + ", ".join(f"{k}={v:.4g}" for k, v in
                                     nm.to_dict()["params"].items()) + ")"


def sample_posterior(image, prior: ScoreModel, *, sigma: float | None = None,
                     noise_model=None, n_samples: int = 4,
                     sigma_min: float | None = None, ratio: float = 0.98,
                     steps_per_level: int = STEPS_PER_LEVEL, step: float = 0.06,
                     device="auto", rng=None,
                     progress=None) -> np.ndarray:
    """Samples of the clean image given a noisy one, by annealed Langevin dynamics on the
    posterior (Kawar et al. 2021, Algorithm 1): Gaussian noise y = x + N(0, sigma^2), or
    camera noise (``poisson-gaussian``) through its variance-stabilising transform.

    Parameters
    ----------
    image : array_like, 2-D
        The noisy plane (data units).
    prior : ScoreModel
        The score of clean images at every noise level: ``train(clean, objective="prior")``
        on high-SNR images of the same kind (frame averages), in the same units.
    sigma : float, optional
        Std of the Gaussian noise of ``image`` (data units), e.g. from ``estimate_noise``.
    noise_model : NoiseModel, optional
        Instead of ``sigma``: a ``gaussian`` model, or the ``poisson-gaussian`` camera of a
        prior from ``train_prior(..., noise_model=camera)`` (checked against the camera the
        prior records; default that camera). With a stabilised prior, ``image`` is in ADU
        with the offset, and so are the samples.
    n_samples : int
        Independent samples, computed together (one network batch).
    sigma_min : float, optional
        The last level (data units); default the larger of sigma / 100 and the lowest level
        the prior was trained at.
    ratio, steps_per_level, step : float, int, float
        Levels ``ratio`` apart (NCSNv2's 0.98), ``steps_per_level`` Langevin steps at each
        (default :data:`STEPS_PER_LEVEL`, the paper's T = 5), step size a_i = ``step``
        sigma_i^2 (the paper's eps sigma_i^2 / sigma_L^2 with eps = step sigma_L^2).
        ``step ratio^2 / (1 - ratio^2)`` must stay below 2, or the first steps, where the
        likelihood term is steepest, diverge.
    device, rng
        ``rng`` seeds the Langevin noise (an int or a numpy Generator).
    progress : callable, optional
        ``progress(done, total)`` after each Langevin step; returning False cancels
        (:class:`scoredenoise.Cancelled`).

    Returns
    -------
    ndarray, shape (n_samples, *image.shape), float32
        Each a sample of p(x + N(0, sigma_min^2) | y): its residual y - x is noise of std
        about sigma.

    Examples
    --------
    >>> prior = scoredenoise.train(averages, objective="prior", steps=3000)  # doctest: +SKIP
    >>> xs = scoredenoise.sample_posterior(noisy, prior, sigma=12.0, n_samples=8)  # doctest: +SKIP
    >>> spread = xs.std(axis=0)                       # where the samples disagree  # doctest: +SKIP
    """
    check_prior(prior)
    opts = dict(n_samples=n_samples, ratio=ratio, steps_per_level=steps_per_level, step=step,
                device=device, rng=rng, progress=progress)
    cam = _prior_camera(prior, noise_model)
    if cam is not None:  # in the camera's variance-stabilised domain, where sigma = 1
        if sigma is not None or sigma_min is not None:
            raise ValueError(f"with a prior of stabilised images the noise is the camera's "
                             f"({_describe(cam)}), 1 in its transformed domain: drop sigma "
                             f"and sigma_min")
        t = cam.stabilise(np.asarray(image, np.float64)).astype(np.float32)
        return cam.unstabilise(_sample_gaussian(t, prior, 1.0, None, **opts)).astype(
            np.float32)
    if noise_model is not None:
        if sigma is not None:
            raise ValueError("give sigma or a gaussian noise_model, not both")
        sigma = float(noise_model.sigma)
    if sigma is None:
        raise ValueError("sample_posterior needs the noise: sigma= (Gaussian noise) or "
                         "noise_model=")
    return _sample_gaussian(image, prior, sigma, sigma_min, **opts)


def _sample_gaussian(image, prior, sigma, sigma_min, *, n_samples, ratio, steps_per_level,
                     step, device, rng, progress) -> np.ndarray:
    y = np.asarray(image, dtype=np.float32)
    if y.ndim != 2 or prior.dims != 2 or prior.channels != 1:
        raise ValueError(f"sample_posterior takes one 2-D single-channel plane with a 2-D "
                         f"single-channel prior so far, got shape {y.shape}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 (the noise std, data units), got {sigma}")
    if int(n_samples) != n_samples or n_samples < 1:
        raise ValueError(f"n_samples must be an integer >= 1, got {n_samples}")
    if int(steps_per_level) != steps_per_level or steps_per_level < 1:
        raise ValueError(f"steps_per_level must be an integer >= 1, got {steps_per_level}")
    if not 0 < ratio < 1:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    if not (step > 0 and step * ratio ** 2 / (1 - ratio ** 2) < 2):
        raise ValueError(f"step must be > 0 and step * ratio^2 / (1 - ratio^2) < 2 (stable "
                         f"first steps), got step {step} at ratio {ratio}: lower step or ratio")
    scale = float(prior.scale[0])
    offset = float(prior.offset[0])
    lo, hi = prior.sigma_range
    s0 = float(sigma) / scale  # normalised units
    if s0 > hi:
        raise ValueError(f"sigma {sigma} is {s0:.3g} of the prior's scale, above the highest "
                         f"level it was trained at ({hi:.3g}); train it with a wider sigma_a")
    if s0 <= lo * 1.02:
        raise ValueError(f"sigma {sigma} is at or below the lowest level the prior was trained "
                         f"at ({lo * scale:.4g} data units): the data are nearly clean; "
                         f"denoise them instead, or train the prior with lower levels")
    smin = max(s0 / 100, lo) if sigma_min is None else float(sigma_min) / scale
    if smin < lo * (1 - 1e-6):
        raise ValueError(f"sigma_min {sigma_min} is below the lowest level the prior was "
                         f"trained at ({lo * scale:.4g} data units)")
    levels = langevin_levels(s0, smin, ratio)
    dev = resolve_device(device)
    net = prior.network.to(dev).eval()

    def prior_score(x, sig):
        return net(x, float(sig)).float() / SCORE_OUTPUT_SCALE

    yn = torch.from_numpy((y - offset) / scale).to(dev)
    x = annealed_langevin(yn, prior_score, sigma=s0, levels=levels, n_samples=n_samples,
                          steps_per_level=steps_per_level, step=step, rng=rng,
                          progress=progress)
    return (x.cpu().numpy() * scale + offset).astype(np.float32)


def annealed_langevin(y: torch.Tensor, prior_score, *, sigma: float, levels, n_samples: int = 1,
                      steps_per_level: int = STEPS_PER_LEVEL, step: float = 0.06, rng=None,
                      progress=None) -> torch.Tensor:
    """Algorithm 1 of Kawar et al. 2021 for any prior score, in the units of ``y``.

    ``y``: the noisy image (a tensor of any shape, e.g. (H, W)); ``prior_score(x, sigma_i)``
    the score of the clean images smoothed by N(0, sigma_i^2) at a batch ``x`` of shape
    (n_samples, 1, *y.shape); ``sigma`` the noise std of ``y``; ``levels`` sigma_1 > ... >
    sigma_L, all below ``sigma`` (:func:`langevin_levels`). Returns (n_samples, *y.shape).
    """
    levels = [float(v) for v in levels]
    if not levels or not all(0 < v < sigma for v in levels):
        raise ValueError(f"levels must lie in (0, sigma = {sigma:.4g}), got "
                         f"{levels[:1] + levels[-1:]}")
    gen = torch.Generator(device="cpu").manual_seed(
        int(np.random.default_rng(rng).integers(2 ** 63)))
    yb = y.reshape((1, 1) + tuple(y.shape))
    x = yb.repeat((int(n_samples), 1) + (1,) * y.ndim)
    total = len(levels) * int(steps_per_level)
    done = 0
    _report(progress, 0, total)
    with torch.inference_mode():
        for sig in levels:
            a = step * sig ** 2
            for _ in range(int(steps_per_level)):
                z = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
                x = x + a * (prior_score(x, sig) + (yb - x) / (sigma ** 2 - sig ** 2)) + \
                    math.sqrt(2 * a) * z
                done += 1
                _report(progress, done, total)
    return x[:, 0]
