"""Training objectives: the method (AR-DAE score matching) and the related methods.

Each objective is registered by name with the loss of one batch; :func:`scoredenoise.train`
looks it up, so the network, the patch pipeline, the schedule, checkpoints and model files
are shared by all of them.

- ``"score"``: AR-DAE (Xie et al. 2023, Eq. 29): E||u + sigma_a s(y + sigma_a u)||^2; the
  model is a score model, solved under any noise model.
- ``"neighbor2neighbor"``: Huang et al. 2021, Eq. 7: a random neighbour sub-sampler takes two
  half-size images g1(y), g2(y) (one pixel of each 2x2 cell, the two pixels neighbours);
  L = ||f(g1(y)) - g2(y)||^2 + gamma ||f(g1(y)) - g2(y) - (g1(f(y)) - g2(f(y)))||^2 with
  f(y) under stop-gradient and gamma raised linearly from 0 to its value (2 for synthetic
  noise in the paper, 1 for real) over training.
- ``"iddp"``: Lin et al. 2023, Eq. 11: n2 = m * (y - f(y)) with a random +-1 mask m (adaptive
  noise degradation), y2 = f(y) + n2, and
  L = alpha ||f(y) - blur(y)||^2 + beta ||f(y2) - Stopgrad(f(y))||^2, alpha = 0.001,
  beta = 1; blur is an averaging filter (its size is not given in the paper: 5x5 here).
  Trained by default at the paper's learning rate, 2e-4: faster rates collapse it.
- ``"supervised"`` and ``"noise2noise"``: MSE to clean targets or to a second noisy frame
  (the upper bounds of the comparison).

All but ``"score"`` give direct denoisers (``model.kind == "denoiser"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Objective", "OBJECTIVES", "get_objective", "neighbor_subsample",
           "iddp_degradation", "sample_sigma_a", "sigma_weight",
           "resolve_sigma_weighting", "SIGMA_WEIGHTINGS"]


@dataclass(frozen=True)
class LossContext:
    """What a loss needs besides the batch: the network call (with autocast; a
    sigma-conditioned network also takes ``sigma``), the random generator, the step, and
    objective-specific settings. ``sigma_range`` (low, high) is set for a sigma-conditioned
    score network: each sample then gets its own sigma_a, log-uniform in it."""

    net: Callable[..., torch.Tensor]
    step: int
    steps: int
    generator: torch.Generator | None
    sigma_a: float
    extra_noise: torch.Tensor | float
    score_scale: float
    sigma_range: tuple[float, float] | None = None
    #: how the conditioned loss weighs its levels, resolved: "none" or "score"
    weighting: str = "none"


@dataclass(frozen=True)
class Objective:
    name: str
    kind: str  # "score" or "denoiser"
    needs_targets: bool
    loss: Callable[[LossContext, torch.Tensor, torch.Tensor | None], torch.Tensor]
    summary: str
    #: spatial sizes the objective needs to be divisible by (the sub-sampler's cell)
    patch_multiple: int = 1
    #: the learning rate :func:`scoredenoise.train` uses unless given one
    lr: float = 1e-3
    #: a score objective trained over this fixed sigma_a range (normalised units) unless
    #: given one, never narrowed to the data; None: the AR-DAE default range, narrowed
    sigma_range: tuple[float, float] | None = None
    #: trained on clean (high-SNR) images: no photon smoothing (only de-quantisation) and
    #: no sigma_a chosen on the training data
    clean_data: bool = False


OBJECTIVES: dict[str, Objective] = {}


def _register(obj: Objective) -> Objective:
    OBJECTIVES[obj.name] = obj
    return obj


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ValueError(f"objective must be one of {tuple(OBJECTIVES)}, got {name!r}")
    return OBJECTIVES[name]


def _randn(x, gen):
    return torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)


# ---------------------------------------------------------------------------------------------
# the method


#: how a sigma-conditioned score network weighs its samples (:func:`sigma_weight`):
#: "auto" (default: chosen by the data, :func:`resolve_sigma_weighting`), "none" (the plain
#: AR-DAE loss) or "score" (1 / sigma_a^2). Measured with the FiLM network
#: (docs/training.md): "score" gave Set12 row 1 +0.57 dB (27.99 against 27.42) but the FMD
#: pairs -1.7 dB (34.15 against 35.87; the photon-starved fish -2.6)
SIGMA_WEIGHTING = "auto"
SIGMA_WEIGHTINGS = ("auto", "none", "score")


def resolve_sigma_weighting(extra_noise: float, weighting: str | None = None, *,
                            counts: bool = False) -> str:
    """The weighting a training run uses: ``weighting`` (default :data:`SIGMA_WEIGHTING`),
    with ``"auto"`` resolved by the data.

    ``"auto"`` weighs by 1 / sigma_a^2 (``"score"``) where the training data are continuous
    (no smoothing added, ``extra_noise == 0``), and not at all (``"none"``) where they lie on
    a lattice or are photon counts (``extra_noise > 0``, or ``counts``: images in their own
    photo-electrons, ``units="photons"``, which need no added smoothing where their read
    noise already spans half a photon): there the targets at small sigma_a carry the comb
    of counts, the noisiest targets of all, and weighting them up swamped the rest.

    Examples
    --------
    >>> resolve_sigma_weighting(0.0, "auto")
    'score'
    >>> resolve_sigma_weighting(1.6, "auto")
    'none'
    >>> resolve_sigma_weighting(0.0, "auto", counts=True)
    'none'
    """
    weighting = SIGMA_WEIGHTING if weighting is None else weighting
    if weighting not in SIGMA_WEIGHTINGS:
        raise ValueError(f"sigma weighting must be one of {SIGMA_WEIGHTINGS}, "
                         f"got {weighting!r}")
    if weighting == "auto":
        return "score" if not (extra_noise or counts) else "none"
    return weighting


def sigma_weight(sigma, weighting: str = "score"):
    """The weight of a sample trained at ``sigma`` (sigma_a) in the sigma-conditioned
    AR-DAE loss, up to a constant, for a resolved ``weighting`` ("none" or "score").

    The loss exceeds its minimum by sigma^2 ||s - s*||^2, and so does its gradient (the
    antithetic pairs make its noise O(sigma^2) too). The score of noisy data is bounded
    (by about 1 / the noise's std), so unweighted, a range of 0.01-0.5 gives the small
    sigma_a the solve uses on natural images 1/2500 of the large ones' say, and the score
    there goes untrained. 1 / sigma^2 gives every sigma_a the same say in the score's
    error and the same gradient (Set12 row 1: 27.72 dB against 27.17 with the input-channel
    network, 27.99 against 27.42 with FiLM); on photon-count data it amplifies the noisiest
    targets, those at small sigma_a, and cost the FMD pairs 1.7 dB (docs/training.md)."""
    sigma = torch.as_tensor(sigma, dtype=torch.float32)
    if weighting == "none":
        return torch.ones_like(sigma)
    if weighting == "score":
        return 1.0 / sigma ** 2
    raise ValueError(f"weighting must be 'score' or 'none' (resolved), got {weighting!r}")


def sample_sigma_a(n: int, low: float, high: float, generator=None,
                   device="cpu") -> torch.Tensor:
    """``n`` values of sigma_a, log-uniform in [low, high] (each octave trained alike)."""
    r = torch.rand(n, generator=generator, device="cpu").to(device)
    return torch.exp(math.log(low) + r * (math.log(high) - math.log(low)))


def _score_loss(ctx: LossContext, x, t, weighted: bool = True):
    if isinstance(ctx.extra_noise, torch.Tensor) or ctx.extra_noise:
        x = x + ctx.extra_noise * _randn(x, ctx.generator)
    # antithetic pairs (+u, -u): the O(sigma_a) noise of the gradient cancels, leaving an
    # estimator whose signal-to-noise ratio does not vanish as sigma_a -> 0; each half is the
    # AR-DAE loss, so the expectation is unchanged
    u = _randn(x, ctx.generator)
    u = torch.cat([u, -u])
    if ctx.sigma_range is None:  # one sigma_a for the batch (the annealed schedule)
        s = ctx.net(torch.cat([x, x]) + ctx.sigma_a * u).float() / ctx.score_scale
        return torch.mean((u + ctx.sigma_a * s) ** 2)
    # sigma-conditioned (Lim et al. 2020): each sample its own sigma_a, given to the network
    sig = sample_sigma_a(x.shape[0], *ctx.sigma_range, generator=ctx.generator,
                         device=x.device)
    sig = torch.cat([sig, sig])
    sb = sig.reshape((-1,) + (1,) * (x.ndim - 1))
    s = ctx.net(torch.cat([x, x]) + sb * u, sig).float() / ctx.score_scale
    if not weighted:  # clean images: |s| ~ 1 / sigma, the plain loss weighs levels alike
        return torch.mean((u + sb * s) ** 2)
    lo, hi = ctx.sigma_range
    w = (sigma_weight(sb, ctx.weighting)  # 1 in the range's middle
         / sigma_weight(math.sqrt(lo * hi), ctx.weighting))
    return torch.mean((u + sb * s) ** 2 * w)


_register(Objective("score", "score", False, _score_loss,
                    "AR-DAE score matching on noisy images (the method)"))


def _prior_loss(ctx: LossContext, x, t):
    return _score_loss(ctx, x, t, weighted=False)


#: NCSN's levels reach 0.01 of the data range at the bottom and beyond it at the top
PRIOR_SIGMA_RANGE = (0.005, 1.0)

_register(Objective("prior", "score", False, _prior_loss,
                    "the score of clean images at every noise level (denoising score "
                    "matching, as NCSN): the prior for stochastic denoising "
                    "(scoredenoise.sample_posterior), trained on high-SNR images",
                    sigma_range=PRIOR_SIGMA_RANGE, clean_data=True))


def _direct_loss(ctx: LossContext, x, t):
    return torch.mean((ctx.net(x).float() - t) ** 2)


_register(Objective("supervised", "denoiser", True, _direct_loss,
                    "MSE to clean targets (upper bound)"))
_register(Objective("noise2noise", "denoiser", True, _direct_loss,
                    "MSE to a second, independent noisy frame (Lehtinen et al. 2018)"))


# ---------------------------------------------------------------------------------------------
# Neighbor2Neighbor

#: the eight ordered pairs of 4-neighbours in a 2x2 cell, cells indexed [[0, 1], [2, 3]]
_N2N_PAIRS = torch.tensor([[0, 1], [0, 2], [1, 0], [1, 3], [2, 0], [2, 3], [3, 1], [3, 2]])


def neighbor_subsample(x: torch.Tensor, generator=None):
    """Random neighbour sub-sampler of Neighbor2Neighbor (Sec. 4.1), k = 2.

    For every 2x2 cell of the last two axes, one of the eight ordered pairs of neighbouring
    pixels is drawn; the first pixel goes to ``g1``, the second to ``g2`` (each half size).

    Returns
    -------
    g1, g2 : torch.Tensor
    apply : callable
        Applies the same sub-sampler to another tensor of the same shape (for g1(f(y)),
        g2(f(y)) in the regulariser).
    """
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    if h % 2 or w % 2:
        raise ValueError(f"Neighbor2Neighbor needs even image sizes, got {h}x{w}")
    cells = (h // 2) * (w // 2)
    choice = torch.randint(0, 8, (n, cells), generator=generator,
                           device="cpu").to(x.device)
    pair = _N2N_PAIRS.to(x.device)[choice]  # (n, cells, 2): positions within the cell

    def apply(t: torch.Tensor):
        # (n, c, h/2, 2, w/2, 2) -> (n, c, cells, 4)
        v = t.reshape(n, t.shape[1], h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5)
        v = v.reshape(n, t.shape[1], cells, 4)
        idx = pair.unsqueeze(1).expand(n, t.shape[1], cells, 2)
        out = torch.gather(v, 3, idx)
        return (out[..., 0].reshape(n, t.shape[1], h // 2, w // 2),
                out[..., 1].reshape(n, t.shape[1], h // 2, w // 2))

    g1, g2 = apply(x)
    return g1, g2, apply


#: the regulariser's weight at the end of training (the paper: 2 synthetic, 1 real)
N2N_GAMMA = 2.0


def _n2n_loss(ctx: LossContext, x, t):
    g1, g2, apply = neighbor_subsample(x, ctx.generator)
    out = ctx.net(g1).float()
    with torch.no_grad():  # stop-gradient on f(y) (Sec. 4.2)
        f1, f2 = apply(ctx.net(x).float())
    gamma = N2N_GAMMA * ctx.step / max(ctx.steps, 1)  # raised gradually to gamma
    diff = out - g2
    return torch.mean(diff ** 2) + gamma * torch.mean((diff - (f1 - f2)) ** 2)


_register(Objective("neighbor2neighbor", "denoiser", False, _n2n_loss,
                    "Neighbor2Neighbor: random neighbour sub-sampler and its regulariser "
                    "(Huang et al. 2021)", patch_multiple=2))


# ---------------------------------------------------------------------------------------------
# IDDP

IDDP_ALPHA, IDDP_BETA, IDDP_BLUR = 0.001, 1.0, 5


def iddp_degradation(removed: torch.Tensor, generator=None) -> torch.Tensor:
    """IDDP's adaptive noise degradation (Eq. 7): ``m * removed`` with a random +-1 mask
    (each element +1 with probability 0.5): zero mean, the magnitude of the removed noise."""
    m = torch.randint(0, 2, removed.shape, generator=generator, device="cpu")
    return (2 * m.to(removed.device, removed.dtype) - 1) * removed


def _box_blur(x: torch.Tensor, size: int) -> torch.Tensor:
    dims = x.ndim - 2
    pad = [size // 2] * (2 * dims)
    xp = F.pad(x, pad, mode="reflect")
    pool = F.avg_pool2d if dims == 2 else F.avg_pool3d
    return pool(xp, size, stride=1)


def _iddp_loss(ctx: LossContext, x, t):
    out = ctx.net(x).float()
    eta = out.detach()  # the prior, under stop-gradient (Eq. 11, 16)
    y2 = eta + iddp_degradation(x - eta, ctx.generator)
    out2 = ctx.net(y2).float()
    return (IDDP_ALPHA * torch.mean((out - _box_blur(x, IDDP_BLUR)) ** 2)
            + IDDP_BETA * torch.mean((out2 - eta) ** 2))


#: the paper's learning rate (Sec. 4). At 1e-3 training collapses after 150-200 steps to a
#: constant output, the trivial solution of the consistency term (on FMD: 39.0 dB at step 150,
#: 23.2 dB at step 200); at 2e-4 it does not (docs/benchmarks.md, "IDDP's learning rate").
IDDP_LR = 2e-4

_register(Objective("iddp", "denoiser", False, _iddp_loss,
                    "IDDP: implicit deep denoiser prior with adaptive noise degradation "
                    "(Lin et al. 2023)", lr=IDDP_LR))
