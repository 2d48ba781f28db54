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

from ._chunked import A_MARGIN
from .model import ScoreModel
from .smoothing import photon_map_of
from .solve import effective_noise_model

__all__ = ["score_jacobian_diagonal", "posterior_std", "probe_signs"]

#: default window (pixels) of a map computed window by window (:func:`posterior_std`)
TILE = 1024


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (uint64 in, uint64 out): well-mixed bits from a counter."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def probe_signs(seed: int, probe: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Random signs (+-1.0) of probe number ``probe`` at the pixels (rows, cols) of a plane:
    a hash of the seed, the probe and the pixel's own coordinates, so a window of a plane
    (rows and cols offset by its origin) gets the same signs as the whole plane, and a map
    computed tile by tile equals the whole plane's."""
    with np.errstate(over="ignore"):
        key = _mix(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15) +
                   np.uint64(probe))
        h = _mix(key ^ (np.asarray(rows, np.uint64)[:, None] * np.uint64(0xD6E8FEB86659FD93)))
        h = _mix(h ^ np.asarray(cols, np.uint64)[None, :])
    return np.where((h >> np.uint64(63)) == 1, -1.0, 1.0)


def _seed(rng) -> int:
    """An integer seed from ``rng`` (None, an int or a numpy Generator)."""
    return int(np.random.default_rng(rng).integers(2 ** 62))


def score_jacobian_diagonal(score_fn: Callable[[np.ndarray], np.ndarray], image, *,
                            eps: float, spacing: int = 2, repeats: int = 1,
                            score=None, rng=None, left=None, right=None,
                            origin: tuple[int, int] = (0, 0)) -> np.ndarray:
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
        Seeds the probes' signs, which are a hash of the seed and each pixel's coordinates
        (:func:`probe_signs`).
    origin : (int, int)
        The coordinates of ``image[..., 0, 0]`` in a larger plane: a window of that plane
        gets the plane's probes (the lattice and the signs), so a map computed window by
        window equals the whole plane's.
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
    seed = _seed(rng)
    r0, c0 = (int(v) for v in origin)
    out = np.zeros_like(y)
    probe = 0
    for _ in range(int(repeats)):
        for oy in range(spacing):
            for ox in range(spacing):
                v = np.zeros_like(y)
                # the lattice of the whole plane: rows = oy and cols = ox modulo spacing
                sy, sx = (oy - r0) % spacing, (ox - c0) % spacing
                lattice = (Ellipsis, slice(sy, None, spacing), slice(sx, None, spacing))
                rows = np.arange(r0 + sy, r0 + y.shape[-2], spacing)
                cols = np.arange(c0 + sx, c0 + y.shape[-1], spacing)
                v[lattice] = probe_signs(seed, probe, rows, cols)
                probe += 1
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
                  rng=None, floor: float | None = None, tile: int | None = TILE):
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
    tile : int or None
        Planes larger than ``tile`` (plus the halo) are mapped window by window (each
        ``tile`` pixels square with a halo of the receptive field and the mean's window),
        which bounds the memory of the probes' temporaries (a dozen plane-sized float64
        arrays) to that of a window. The probes are a function of each pixel's coordinates
        (:func:`probe_signs`), so the result equals the whole plane's (up to floating-point
        reassociation; for a correlated model up to the periodic FFT's wrap, kept out by a
        margin as the chunked solve does). ``None``: the whole plane at once.
    device
    rng
        Seeds the probes (an int, a numpy Generator or None).

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
    if int(window) != window or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd integer >= 1, got {window}")
    if tile is not None and (int(tile) != tile or tile < 1):
        raise ValueError(f"tile must be a positive integer (pixels) or None, got {tile}")
    # the map is the posterior std under the noise model plus the smoothing, with the
    # network's own score: the factor a SigmaA carries corrects the result's shrinkage, not
    # that variance (with it the map grew 1.6x on FMD field 4 for the same error; the
    # calibration of docs/uncertainty.md is of this map)
    # a model in photo-electrons: in this image's units (the map sigma_a carries, or its own)
    if getattr(model, "units", "data") == "photons":
        model = model.bind(y, axes="YX", photon_map=photon_map_of(sigma_a))
    sig = float(model.resolve_sigma_a(y, sigma_a, noise_model, device=device, factor=False))
    nm = effective_noise_model(model, noise_model, 0, sig)
    total = float(np.sqrt(nm.noise_level(np.array([float(np.mean(y))]))[0]))
    if floor is None:
        floor = STD_FLOOR if model.conditioned else STD_FLOOR_UNCONDITIONED
    opts = dict(model=model, nm=nm, sigma_a=sig if model.conditioned else None,
                eps=0.01 * total if eps is None else float(eps), spacing=spacing,
                repeats=repeats, window=int(window), device=device, seed=_seed(rng),
                floor=float(floor))
    m = model.network.config.multiple
    # what a kept pixel's map depends on: the receptive field, the 5x5 mean, and for a
    # correlation operator the periodic FFT's reach (as the chunked solve keeps it out)
    halo = model.halo + int(window) // 2 + (A_MARGIN if nm.correlated() else 0)
    halo = -(-halo // m) * m
    h, w = y.shape
    if tile is None or (h <= tile + 2 * halo and w <= tile + 2 * halo):
        return _std_window(y, (0, 0), **opts)
    t = max(int(tile) // m * m, m)
    out = np.empty(y.shape, np.float32)
    for r in range(0, h, t):
        for c in range(0, w, t):
            r0, c0 = max(0, r - halo), max(0, c - halo)
            part = _std_window(y[r0:min(h, r + t + halo), c0:min(w, c + t + halo)],
                               (r0, c0), **opts)
            out[r:r + t, c:c + t] = part[r - r0:r - r0 + t, c - c0:c - c0 + t]
    return out


def _std_window(y, origin, *, model, nm, sigma_a, eps, spacing, repeats, window, device,
                seed, floor):
    """:func:`posterior_std` of a window of the plane whose first pixel is at ``origin``."""
    s = model.predict(y, device=device, sigma_a=sigma_a)

    def score_fn(z):
        return model.predict(z.astype(np.float32), device=device, sigma_a=sigma_a)

    probes = dict(eps=eps, spacing=spacing, repeats=repeats, score=s, rng=seed, origin=origin)
    if nm.correlated():  # C + B^T J B, the diagonal probed through B (LocalGaussian)
        lg = nm.local_gaussian(y, s)
        d = score_jacobian_diagonal(score_fn, y, left=lg.bt, right=lg.b, **probes)
        var = lg.variance(lg.smoothed(d, lambda a: _box_mean(a, window)))
        least = lg.c
    else:
        d = score_jacobian_diagonal(score_fn, y, **probes)
        var = nm.posterior_variance(y, s, _box_mean(d, window))
        least = noise_variance_at_result(nm, y, s)
    if floor > 0:
        var = np.maximum(var, floor ** 2 * least)
    return np.sqrt(var).astype(np.float32)
