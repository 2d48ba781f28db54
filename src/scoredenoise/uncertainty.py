"""How sure a result is: the diagonal of the score's Jacobian, and from it the posterior
standard deviation of each pixel (second-order Tweedie; Xie et al. 2023's score, issue 24).

For Gaussian noise of std sigma, y = x + n, the posterior mean is y + sigma^2 s(y) (the
solve) and the posterior covariance sigma^2 (I + sigma^2 ds/dy). The learned score is that of
the data smoothed by the training noise and sigma_a; the solve removes them as part of a
Gaussian of std sigma_total, and so does the variance here.

The diagonal of ds/dy is estimated with probes: a probe v holds random signs on a lattice of
pixels ``spacing`` apart (zero elsewhere), and the central difference (s(y + eps v) -
s(y - eps v)) / (2 eps) gives J v; at a lattice pixel, v_i (J v)_i = J_ii plus the
contributions of the other lattice pixels, which have zero mean (random signs) and leave out
every neighbour closer than ``spacing``, where the Jacobian is largest. ``spacing**2`` probes
cover every pixel once; ``repeats`` coverings are averaged. Cost: 2 * repeats * spacing**2
network passes, or half with forward differences from a known score (``posterior_std``:
spacing 2, 2 coverings, 8 passes, the diagonal then averaged over 5x5 pixels).

Noise models (:meth:`NoiseModel.posterior_variance`): ``gaussian`` exactly (for the exact
score); ``gamma`` through its exponential family (Tweedie exact for its natural parameter, the
delta method to x); every other model without a correlation kernel in the local Gaussian
approximation (the model's variance at the result in the same formula: exact where its noise
is nearly Gaussian, e.g. many counts). Correlated models (a kernel A) through their local
linear-Gaussian form y = G x + N(0, Sigma) (:meth:`NoiseModel.local_gaussian`):
Cov[x|y] = C + B^T J B with C = G^-1 Sigma G^-T and B = Sigma G^-T, the diagonal of B^T J B
probed through B (exact for ``gaussian-correlated``; the local Gaussian approximation for the
others). How close each is to the exact posterior: ``benchmarks/posterior_models.py``,
docs/uncertainty.md. 2-D single-channel planes (the CLI streams a stack plane by plane).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .model import ScoreModel
from .solve import effective_noise_model

__all__ = ["score_jacobian_diagonal", "posterior_std"]


def score_jacobian_diagonal(score_fn: Callable[[np.ndarray], np.ndarray], image, *,
                            eps: float, spacing: int = 2, repeats: int = 1,
                            score=None, rng=None, left=None, right=None) -> np.ndarray:
    """Estimate ds_i/dy_i of a score function at ``image`` (any shape; the lattice is on
    the last two axes), or the diagonal of ``left`` J ``right`` (e.g. B^T J B).

    Parameters
    ----------
    score_fn : callable
        ``score_fn(y)`` returns the score at ``y`` (same shape).
    image : array_like
        Where the Jacobian is taken.
    eps : float
        Step of the central difference, in the data's units (e.g. 1e-2 of the noise std):
        exact for a piecewise linear network within its linear pieces.
    spacing : int
        Lattice spacing of each probe; ``spacing=1``: Hutchinson's estimator with
        Rademacher probes; a spacing beyond the network's receptive field: the exact
        diagonal.
    repeats : int
        Coverings averaged (the estimate's noise falls as 1/sqrt(repeats)).
    score : array_like, optional
        The score at ``image`` when already computed: forward differences, one network pass
        a probe instead of two (as exact for a ReLU network within its linear pieces).
    rng : seed or numpy Generator
    left, right : callable, optional
        Linear operators (numpy in, numpy out): the diagonal of left(J right(.)) instead of
        J's, each probe v taken through ``right`` before the score's difference and the
        result through ``left`` (the posterior covariance of correlated noise needs
        B^T J B, :class:`scoredenoise.noise.LocalGaussian`). They spread a probe over
        their footprint, so the lattice's other pixels come nearer: a larger ``spacing``
        (or more ``repeats``) keeps the estimate's noise down.

    Returns
    -------
    numpy.ndarray
        Same shape as ``image``, in 1/data units squared (times the operators' units).

    Examples
    --------
    >>> import numpy as np
    >>> d = score_jacobian_diagonal(lambda y: -y / 4.0, np.zeros((8, 8)), eps=0.1)
    >>> float(d.mean())
    -0.25
    """
    y = np.asarray(image, dtype=np.float64)
    if not eps > 0:
        raise ValueError(f"eps must be > 0 (data units), got {eps}")
    if int(spacing) != spacing or spacing < 1:
        raise ValueError(f"spacing must be an integer >= 1, got {spacing}")
    if int(repeats) != repeats or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats}")
    if y.ndim < 2:
        raise ValueError(f"image must have at least 2 axes (Y, X), got shape {y.shape}")
    rng = np.random.default_rng(rng)
    out = np.zeros_like(y)
    for _ in range(int(repeats)):
        for oy in range(spacing):
            for ox in range(spacing):
                v = np.zeros_like(y)
                lattice = (Ellipsis, slice(oy, None, spacing), slice(ox, None, spacing))
                v[lattice] = rng.choice((-1.0, 1.0), size=v[lattice].shape)
                w, size = v, 1.0
                if right is not None:  # the step along right(v), scaled to eps at most
                    w = np.asarray(right(v), np.float64)
                    size = float(np.abs(w).max()) or 1.0
                    w = w / size
                if score is None:
                    jv = (np.asarray(score_fn(y + eps * w), np.float64)
                          - np.asarray(score_fn(y - eps * w), np.float64)) / (2 * eps)
                else:
                    jv = (np.asarray(score_fn(y + eps * w), np.float64)
                          - np.asarray(score, np.float64)) / eps
                jv = jv * size
                if left is not None:
                    jv = np.asarray(left(jv), np.float64)
                out[lattice] += v[lattice] * jv[lattice]
    return out / repeats


def _box_mean(a: np.ndarray, window: int) -> np.ndarray:
    """Mean over a ``window`` x ``window`` neighbourhood (edges reflected)."""
    if window <= 1:
        return a
    t = torch.from_numpy(np.ascontiguousarray(a, np.float64))[None, None]
    r = window // 2
    t = torch.nn.functional.pad(t, (r, r, r, r), mode="reflect")
    return torch.nn.functional.avg_pool2d(t, window, stride=1)[0, 0].numpy()


def noise_variance_at_result(nm, y, score) -> np.ndarray:
    """The noise's variance at the denoised value of each pixel, in the clean image's units
    (:meth:`NoiseModel.variance_at_result` / mean_gain^2): never below the read noise's,
    where the variance at ``y`` itself can be negative for a camera (pixels the read noise
    pulled below the offset)."""
    return nm.variance_at_result(y, score) / nm.mean_gain ** 2


#: the stated std is at least this fraction of the noise's std at the pixel (``floor``):
#: sigma^2 (1 + sigma^2 ds/dy) is the difference of two nearly equal numbers where the
#: posterior is far narrower than the noise (a dark background), and its estimate there
#: often falls below 0, where the map would claim certainty. FMD field 4 against its
#: average (its own noise counted): rms(error / std) 1.20 and 91.9 % within 1.96 std
#: without a floor, 1.11 and 93.9 % with 0.05, 0.96 and 96.2 % with 0.1 (docs/uncertainty.md)
STD_FLOOR = 0.05

#: the floor for the paper's unconditioned network (``conditioned=False``, the choice of
#: ``conditioned="auto"`` for data that are not photon-starved). Its score is taken at the
#: data's own noise (sigma_a about 0.02), where it is the least regular: on Set12 (sigma 25,
#: 600 steps) 2 % of the pixels got a stated std at the 0.05 floor where the actual error was
#: about 10 (rms(error / std) 1.27, 92.9 % within 1.96 std); with 0.2: 0.94 and 95.9 %, and
#: on correlated noise (row 2) 1.11 / 93.0 % -> 1.07 / 93.2 % (docs/uncertainty.md). The
#: conditioned network, evaluated at the level Stein's estimate picks, keeps STD_FLOOR
STD_FLOOR_UNCONDITIONED = 0.2


def posterior_std(image, model: ScoreModel, noise_model, *, sigma_a="auto", spacing: int = 2,
                  repeats: int = 2, window: int = 5, eps: float | None = None, device="auto",
                  rng=None, floor: float | None = None):
    """Per-pixel posterior standard deviation of the denoised image, same shape as ``image``.

    The spread of the clean image given the noisy one, under ``noise_model``, from the
    learned score and its Jacobian's diagonal (second-order Tweedie): the error of
    :func:`scoredenoise.denoise`'s result at each pixel is of this size. Exact for the
    ``gaussian`` and ``gaussian-correlated`` models, through the exponential family for
    ``gamma``, in the local Gaussian approximation for the others (correlated models:
    C + B^T J B from their local linear-Gaussian form, :meth:`NoiseModel.local_gaussian`);
    2-D single-channel images.

    Parameters
    ----------
    image : array_like, 2-D
    model : ScoreModel
    noise_model : NoiseModel
    sigma_a : "auto" or float
        Where a sigma-conditioned network is evaluated (as in ``denoise``).
    spacing, repeats : int
        Probes (:func:`score_jacobian_diagonal`, forward differences from the score):
        repeats * spacing**2 network passes beside the score's one (8 at the defaults).
    window : int
        The estimated diagonal is averaged over ``window`` x ``window`` pixels before the
        variance is formed (odd; 1: not at all). One covering's estimate is noisy enough
        that some pixels got a variance of 0; on Set12 (row 1) a 5x5 mean of 2 coverings
        left none (docs/uncertainty.md). It assumes the diagonal varies slowly.
    eps : float, optional
        Central-difference step in data units (default: 1 % of the total noise std).
    floor : float, optional
        The stated std is at least ``floor`` times the noise's std at the pixel, where the
        estimate would otherwise claim certainty (a variance estimated at or below 0; 0:
        none). Default :data:`STD_FLOOR` (0.05) for a sigma-conditioned network,
        :data:`STD_FLOOR_UNCONDITIONED` (0.2) for the unconditioned one.
    device, rng

    Examples
    --------
    >>> sd_map = scoredenoise.posterior_std(noisy, model, scoredenoise.get_noise_model(
    ...     "gaussian", sigma=25.0))                                  # doctest: +SKIP
    """
    y = np.asarray(image, dtype=np.float32)
    if model.kind != "score":
        raise ValueError(f"posterior_std needs a score model; this one is a direct denoiser "
                         f"({model.meta.get('training', {}).get('objective')}), which has no "
                         f"score: train with objective='score'")
    if model.dims != 2:
        raise ValueError(f"posterior_std takes 2D score models so far, got a {model.dims}D "
                         f"one; train a 2D model (dims=2) for the map")
    if y.ndim != 2:
        raise ValueError(f"posterior_std takes one 2-D plane (Y, X) so far, got shape "
                         f"{y.shape}")
    sig = model.resolve_sigma_a(y, sigma_a, noise_model, device=device)
    arg = sig if model.conditioned else None
    nm = effective_noise_model(model, noise_model, 0, sig)
    s = model.predict(y, device=device, sigma_a=arg)
    total = float(np.sqrt(nm.noise_level(np.array([float(np.mean(y))]))[0]))
    step = 0.01 * total if eps is None else float(eps)

    def score_fn(z):
        return model.predict(z.astype(np.float32), device=device, sigma_a=arg)

    if int(window) != window or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd integer >= 1, got {window}")
    if floor is None:
        floor = STD_FLOOR if model.conditioned else STD_FLOOR_UNCONDITIONED
    floor = float(floor)
    if nm.correlated():  # C + B^T J B, the diagonal probed through B (LocalGaussian)
        lg = nm.local_gaussian(y, s)
        d = score_jacobian_diagonal(score_fn, y, eps=step, spacing=spacing, repeats=repeats,
                                    score=s, rng=rng, left=lg.bt, right=lg.b)
        var = lg.variance(lg.smoothed(d, lambda a: _box_mean(a, int(window))))
        least = lg.c
    else:
        d = score_jacobian_diagonal(score_fn, y, eps=step, spacing=spacing, repeats=repeats,
                                    score=s, rng=rng)
        var = nm.posterior_variance(y, s, _box_mean(d, int(window)))
        least = noise_variance_at_result(nm, y, s)
    if floor > 0:
        var = np.maximum(var, floor ** 2 * least)
    return np.sqrt(var).astype(np.float32)
