"""Training: AR-DAE score matching (the method) and the direct baselines, on lazily read patches.

One patch pipeline and one network serve every objective:

- ``"score"``: AR-DAE (Xie et al. 2023, Eq. 29; Noise2Score): minimise
  E||u + sigma_a s(y + sigma_a u)||^2 with sigma_a annealed from 0.05 to 1e-6;
- ``"supervised"``: MSE to clean targets (upper bound in benchmarks);
- ``"noise2noise"``: MSE to a second, independent noisy frame of the same scene.

Patches are read at random from any number of images or stacks (numpy, dask, zarr, or any
array-like with ``shape`` and slicing), so a stack larger than memory trains with bounded memory.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable

import numpy as np
import torch

from ._device import autocast, resolve_device, resolve_precision
from .model import SCORE_OUTPUT_SCALE, ScoreModel, model_from_parts, read_model_file
from .network import PRESETS, build_network
from .objectives import OBJECTIVES as _OBJECTIVES
from .objectives import LossContext, get_objective, resolve_sigma_weighting
from .sampling import PatchSampler
from .smoothing import SIGMA_RANGE, select_sigma_a
from .train_config import PRESET_STEPS, TRAIN_STEPS, TrainConfig
from .units import PhotonMap, _estimate, to_photons

__all__ = ["train", "time_per_step", "PatchSampler", "sigma_a_schedule", "OBJECTIVES",
           "TRAIN_STEPS", "auto_extra_noise"]

#: the registered training objectives (see :mod:`scoredenoise.objectives`)
OBJECTIVES = tuple(_OBJECTIVES)

TrainProgress = Callable[[int, int, dict], "bool | None"]


# ---------------------------------------------------------------------------------------------
# schedules


def sigma_a_schedule(step: int, total: int, *, start: float = 0.05, end: float = 1e-6,
                     every: int = 50, hold: int = 50) -> float:
    """The AR-DAE perturbation of the paper's official code at training step ``step``.

    Linear from ``start`` to ``end`` in stages of ``every`` steps, then ``end`` for the last
    ``hold`` steps.
    """
    anneal = max(total - hold, 1)
    n_stages = max(math.ceil(anneal / every), 1)
    if step >= anneal or n_stages == 1:
        return end if step >= anneal else start
    stage = step // every
    return start + (end - start) * stage / (n_stages - 1)


def lr_schedule(step: int, total: int, lr: float) -> float:
    """The paper's learning rate: ``lr``, then ``lr / 10`` for the last fifth of training."""
    return lr if step < total - total // 5 else lr / 10


# ---------------------------------------------------------------------------------------------
# patches


# ---------------------------------------------------------------------------------------------
# training


#: a conditioned network trained on the default sigma_a range is narrowed, after this share of
#: its steps, to this factor either side of the sigma_a that SURE prefers on the training data
#: then (FMD prefers 0.02-0.05, photon-starved widefield 0.1-0.35: one wide range trains
#: either less well than its own; docs/training.md)
ADAPT_AT = 0.3
ADAPT_WIDTH = 3.0

#: prefix of the raw (not averaged) weights in a checkpoint trained with ``ema``
_RAW = "trainer.raw."


#: interactive defaults (the napari widget) by device type: a CPU user gets a result in 2-3
#: minutes. On the bundled sample (4 FMD frames of 256x256, 2-core CPU; docs/napari.md):
#: small x 2000 steps 38.50 dB in 144 s; default x 1000 (the API's defaults) 39.01 in 316 s;
#: default x 500 38.42 in 161 s; small x 1000 38.38 in 72 s (noisy 31.37)
INTERACTIVE = {"cpu": dict(preset="small", steps=2000),
               "cuda": dict(preset="default", steps=TRAIN_STEPS)}


def interactive_settings(device="auto") -> dict:
    """Preset and steps for interactive training on ``device`` (the napari widget's
    defaults): about 2-3 minutes on a 2-core CPU; the default network at 1000 steps on a
    GPU (the API's ``preset=None`` picks the small one at 4000 for photon-starved data)."""
    kind = resolve_device(device).type if device == "auto" else torch.device(device).type
    return dict(INTERACTIVE.get(kind, INTERACTIVE["cuda"]))

def default_preset(conditioned: bool) -> str:
    """``preset=None``: the network size for the data. A sigma-conditioned score network
    trained on the data (photon-starved data, ``conditioned="auto"``) gets ``"small"`` (4000
    steps by default, :data:`PRESET_STEPS`): in the default network's time it trains 4x the
    steps and, with its cheap ``tta="auto"``, gives FMD field 4 +0.5 to +0.6 dB, W2S +0.36
    (three seeds) and the FMD pairs +0.3 (docs/training.md, "The small network by default
    for photon-starved data"); any other network ``"default"`` (Set12's brighter noise,
    the related methods, the clean-image prior), as measured before."""
    return "small" if conditioned else "default"


def _preset_of(net) -> str:
    """The preset whose size ``net`` has ("default" for custom sizes)."""
    cfg = net.config
    for name, size in PRESETS.items():
        if cfg.base_channels == size["base_channels"] and cfg.depth == size["depth"]:
            return name
    return "default"


#: photon-count data are smoothed in training to this many photon steps (the gain) in all,
#: read noise included: their density is a comb of counts one step apart, whose score the
#: network cannot learn; a Gaussian of half a step leaves a smooth density (the comb's first
#: Fourier coefficient falls to exp(-2 pi^2 / 4) = 0.7 %). Removed exactly by the exact
#: Poisson-Gaussian solve, as a larger read noise
PHOTON_SMOOTHING = 0.5


def auto_extra_noise(sampler: PatchSampler) -> float:
    """``extra_noise="auto"``: the Gaussian noise added to the training data.

    Continuous data: none. Data on a lattice (integer camera data: step 1 ADU): the lattice
    step (de-quantisation), and for photon counts (a Poisson-Gaussian noise level function
    measured on the data) at least what brings the Gaussian part, read noise included, to
    ``PHOTON_SMOOTHING`` photon steps, so that the comb of counts is smoothed too."""
    q = sampler.quantisation_step()
    if q == 0 or sampler.channels != 1:
        return q
    cam = sampler.camera()
    if cam is None:
        return q
    gain, read = cam
    return float(max(q, math.sqrt(max((PHOTON_SMOOTHING * gain) ** 2 - read ** 2, 0.0))))


#: ``conditioned="auto"``: a sigma-conditioned network for photon-starved data, below this
#: many photo-electrons a pixel (the median over the training images); the paper's network
#: otherwise. With few photons the score at small smoothing cannot be learned and the level
#: must be chosen per image (FMD confocal 1.6, the FMD pairs 1.4, W2S widefield 3.6: the
#: unconditioned network loses 5 dB on W2S and fails on the zebrafish frame); with more, and
#: on data that are not photon counts, the unconditioned network learns the one level it is
#: used at and is 0.2-1.0 dB better on Set12 at 600 steps (Poisson rows 10, Gaussian rows
#: 30-60; docs/training.md, "Which network, by the data")
CONDITION_BELOW_PHOTONS = 6.0


def auto_conditioned(sampler: PatchSampler) -> bool:
    """``conditioned="auto"``: whether to train a sigma-conditioned network on the data.

    True for photon-starved data (fewer than :data:`CONDITION_BELOW_PHOTONS`
    photo-electrons a pixel, measured by :func:`scoredenoise.estimate_noise` on a few of the
    images: :meth:`PatchSampler.photons_per_pixel`) and for multichannel data; False for
    brighter photon counts and data that are not photon counts (Gaussian, speckle)."""
    if sampler.channels != 1:
        return True
    photons = sampler.photons_per_pixel()
    return photons is not None and photons < CONDITION_BELOW_PHOTONS


def auto_units(sampler: PatchSampler, objective, conditioned) -> str:
    """``units="auto"``: ``"photons"`` (each image in its own photo-electrons) where the
    score network is sigma-conditioned for photon-starved counts, the regime of the small
    default network (:func:`auto_conditioned`: single-channel photon counts below
    :data:`CONDITION_BELOW_PHOTONS` photo-electrons a pixel; not forced unconditioned);
    ``"data"`` otherwise: other objectives, multichannel data, brighter counts, noise that is
    not photon counts (and, in :func:`train`, where an image has no photon map: its
    estimate finds no Poisson-Gaussian noise). Measured with the small network's defaults
    (docs/training.md, "Each image in its own photo-electrons"): W2S +0.66 dB over three
    seeds, the FMD pairs +0.15 over two, FMD confocal within the seeds' spread."""
    if objective.kind != "score" or objective.clean_data or conditioned is False or \
            sampler.channels != 1:
        return "data"
    return "photons" if auto_conditioned(sampler) else "data"


def _defaults(dims, patch_size, batch_size):
    if patch_size is None:
        patch_size = 64 if dims == 2 else 32
    if batch_size is None:
        batch_size = 8 if dims == 2 else 4
    return patch_size, batch_size


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors, plain = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                plain[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": plain}


def _optimizer_state(tensors: dict, saved: dict) -> dict:
    state: dict = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, k = key.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    for key, v in saved.get("scalars", {}).items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    return {"state": state, "param_groups": saved["param_groups"]}


def train(images, *, config: TrainConfig | None = None, axes=None, targets=None,
          device="auto", progress: TrainProgress | None = None, checkpoint=None,
          checkpoint_every: int = 500, resume=None, model: ScoreModel | None = None,
          network_overrides: dict | None = None, **settings) -> ScoreModel:
    """Train a score model (AR-DAE) on noisy images only, or a direct baseline denoiser.

    The settings (``dims`` to ``ema`` below) are the fields of :class:`TrainConfig`: give
    them as keywords, or as ``config`` (keywords then change single fields of it). The model
    records them as given (:attr:`ScoreModel.train_config`: training again with it repeats
    the run) and as resolved for the data (``meta["training"]``).

    Parameters
    ----------
    images : array or sequence of arrays
        Noisy images or stacks (numpy, dask, zarr, ...), read lazily patch by patch.
    config : TrainConfig, optional
        The settings (default ``TrainConfig()``), e.g. another model's ``train_config``.
    axes : str or sequence of str, optional
        Axes of each image, letters from TCZYXS (default from ndim: YX, ZYX, TZYX, TCZYX).
        Channels (C) are modelled jointly; other non-spatial axes are samples.
    targets : sequence of arrays, optional
        Clean images (supervised) or second noisy frames (noise2noise), aligned with images.
    dims : {2, 3}
        2D network (planes) or 3D network (volumes, 3x3x3 convolutions).
    preset : {"small", "default", "large"}, optional
        Network size (docs/training.md lists parameters and FLOPs per pixel). Default
        (None): ``"small"`` for a sigma-conditioned score network trained on the data
        (photon-starved data under ``conditioned="auto"``), ``"default"`` otherwise
        (:func:`default_preset`); recorded resolved in ``meta["training"]``.
    steps : int, optional
        Default (None) by the preset (:data:`PRESET_STEPS`): 4000 for ``"small"``, 1000
        for the others, about the same time for the two smaller presets.
    batch_size, patch_size, lr, weight_decay
        Optimisation: AdamW, learning rate divided by 10 for the last fifth of the steps. The
        default ``lr`` is the objective's (1e-3; 2e-4 for ``"iddp"``, its paper's rate).
    val_fraction : float
        Fraction of rows (Y) of each image held out for a validation loss (at least one
        patch height).
    augment : bool
        Random flips and 90-degree rotations (default on).
    extra_noise : float or "auto"
        Standard deviation, in data units, of a slight Gaussian noise added to the training data
        (the paper's trick for non-Gaussian noise, appendix B: sigma = 5 on 0-255 for Poisson
        data with lam = 0.2, i.e. one step of the lattice of values). It is removed at denoising
        time by solving with the noise model plus this Gaussian (a mixture). ``"auto"`` (default)
        uses 0 for continuous data; for data on a lattice (integer camera data: 1 ADU) the
        lattice step, and for photon counts (a Poisson-Gaussian noise level function measured
        on the images by :func:`scoredenoise.estimate_noise`) at least what brings the Gaussian
        part, read noise included, to half a photon step (:func:`auto_extra_noise`): the
        density of lattice values, and of photon counts a gain apart, is a comb whose score the
        network cannot learn. The exact Poisson-Gaussian solve removes it exactly.
    objective : {"score", "prior", "neighbor2neighbor", "iddp", "supervised", "noise2noise"}
        The method (score), a related self-supervised method (noisy images only), or a
        direct baseline needing ``targets``; see :mod:`scoredenoise.objectives`.
        ``"prior"``: the score of *clean* (high-SNR, e.g. frame-averaged) images at every
        noise level of ``sigma_a`` (default 0.005-1), for stochastic denoising
        (:func:`scoredenoise.sample_posterior`).
    conditioned : bool or "auto"
        ``"auto"`` (default): True for photon-starved data (fewer than
        :data:`CONDITION_BELOW_PHOTONS` photo-electrons a pixel, measured on the images by
        :func:`scoredenoise.estimate_noise`), for multichannel data and where ``sigma_a``
        gives a range; False for brighter counts and noise that is not photon counts
        (:func:`auto_conditioned`; the model records the choice in ``meta["training"]``).
        True: a sigma-conditioned score network (Lim et al. 2020's AR-DAE): the AR-DAE
        perturbation sigma_a is an input of the network, each sample of a batch is trained
        at its own sigma_a, log-uniform over the ``sigma_a`` range, and the score is later
        evaluated at the sigma_a that Stein's unbiased risk estimate finds best for each
        image (:func:`scoredenoise.select_sigma_a`); the solve removes that smoothing.
        ``False``: the paper's network, trained on an annealed schedule and evaluated at its
        last value.
    sigma_a : (float, float), optional
        AR-DAE perturbation (normalised units, data range about 1). Conditioned networks:
        the training range (default ``(0.01, 0.5)``). Unconditioned: annealed linearly
        from the first to the second value in stages of ``anneal_every`` steps, held at the
        last for the final ``anneal_every`` steps (default ``(0.05, 0.02)``; the paper's
        ``(0.05, 1e-6)`` with ``lr=1e-4``). The network learns the score of the data
        smoothed by that Gaussian, which the solve removes exactly as part of the noise
        model (a mixture). Why sigma-conditioning is the default: docs/training.md.
    device : "auto", "cpu", "cuda", ...
    precision : {"auto", "fp32", "bf16", "fp16"}
        Autocast precision of the network in training (default fp32). ``"auto"``: bf16 where
        the device computes it natively (CPUs with AVX512-BF16 or AMX, recent GPUs), else
        fp32. bf16 steps are 1.6x faster on this project's CPU but cost 0.3 dB on FMD confocal
        and 1.3 dB on W2S widefield at equal steps (docs/training.md), hence not the default.
    seed : int, optional
        Seeds patch sampling, noise draws and the network initialisation.
    progress : callable, optional
        ``progress(step, steps, logs)`` after each step; ``logs`` holds ``loss``, ``sigma_a``
        (None for a conditioned network, which holds its sampled range in ``sigma_range``),
        ``lr``, ``elapsed`` and, when computed, ``val_loss``. Returning False stops
        training: the model trained so far is returned (and checkpointed when
        ``checkpoint`` is set).
    checkpoint : path, optional
        Checkpoint file, written every ``checkpoint_every`` steps, on stop and at the end; a
        checkpoint is a model file that :func:`load_model` reads and ``resume`` continues.
    resume : path, optional
        Continue an interrupted run from its checkpoint (weights, optimiser, step, random state).
    model : ScoreModel, optional
        Continue training an existing model (new schedule, same normalisation).
    units : {"auto", "data", "photons"}
        ``"photons"``: each image in its own photo-electrons, u = (y - offset) / gain by its
        own Poisson-Gaussian estimate (:mod:`scoredenoise.units`), so that images whose gains
        differ (files stretched one by one, several cameras) share one lattice of counts and
        one noise law; ``extra_noise="auto"`` is then half a photon (read noise included);
        the model maps each image it denoises by that image's own estimate
        (:meth:`ScoreModel.bind`), whatever noise model it is solved with. A
        sigma-conditioned score network only. ``"data"``: every image at one normalisation
        per channel. ``"auto"`` (default): photons for photon-starved single-channel counts
        on a sigma-conditioned score network, else data (:func:`auto_units`). Measured
        against the data's units: W2S +0.66 dB (gains 3.7-44 ADU/e-), the FMD pairs +0.15,
        FMD confocal within the seeds' spread (docs/training.md, "Each image in its own
        photo-electrons").
    ema : float, optional
        Decay per step of an exponential moving average of the weights (e.g. 0.99: an average
        over about the last 100 steps); the model returned, and each checkpoint's model, is
        the average. Default: the last weights. On W2S an average of 0.98 gained 0.2-1.3 dB
        on two seeds at 300 steps, 0.99 nothing at the default 1000 (docs/training.md).

    Returns
    -------
    ScoreModel

    Examples
    --------
    >>> model = scoredenoise.train(noisy_stack, axes="ZYX", steps=2000)   # doctest: +SKIP
    >>> model.save("cells.sdmodel")                                         # doctest: +SKIP
    """
    cfg = (config if config is not None else TrainConfig()).replace(**settings)
    objective, dims, preset, steps = cfg.objective, cfg.dims, cfg.preset, cfg.steps
    patch_size, batch_size, weight_decay = cfg.patch_size, cfg.batch_size, cfg.weight_decay
    val_fraction, val_every, augment = cfg.val_fraction, cfg.val_every, cfg.augment
    extra_noise, conditioned, sigma_a = cfg.extra_noise, cfg.conditioned, cfg.sigma_a
    anneal_every, precision, seed, ema = cfg.anneal_every, cfg.precision, cfg.seed, cfg.ema
    obj = get_objective(objective)
    lr = obj.lr if cfg.lr is None else float(cfg.lr)
    if obj.needs_targets and targets is None:
        raise ValueError(f"objective {objective!r} needs targets (clean images or second frames)")
    if not obj.needs_targets and targets is not None:
        raise ValueError(f"objective {objective!r} trains on noisy images only; drop targets")
    start_step, history, saved_opt, trainer_state = 0, [], None, None
    if resume is not None:
        header, tensors = read_model_file(resume)
        model = model_from_parts(header, tensors, repr(str(resume)))
        trainer_state = header.get("trainer_state")
        if trainer_state is None:
            raise ValueError(f"{resume!s} is a model file, not a training checkpoint; pass it "
                             f"as model= to continue training with a new schedule")
        start_step = int(trainer_state["step"])
        saved_opt = _optimizer_state(tensors, trainer_state["optimizer"])
        history = model.meta.get("history", [])
    if model is not None:  # the network fixes the dimensionality and the kind
        dims = model.dims
        if (model.kind == "score") != (obj.kind == "score"):
            raise ValueError(f"cannot continue a {model.kind!r} model with objective "
                             f"{objective!r}")
        conditioned = model.conditioned
    if obj.kind != "score":
        conditioned = False
    if obj.sigma_range is not None and conditioned is False:
        raise ValueError(f"objective {objective!r} trains a sigma-conditioned network; drop "
                         f"conditioned=False")
    if conditioned == "auto" and (sigma_a is not None or obj.sigma_range is not None):
        conditioned = True  # a given sigma_a is a conditioned network's range
    patch_size, batch_size = _defaults(dims, patch_size, batch_size)
    if obj.patch_multiple > 1 and any(int(p) % obj.patch_multiple for p in
                                      np.atleast_1d(patch_size)):
        raise ValueError(f"objective {objective!r} needs patch sizes divisible by "
                         f"{obj.patch_multiple}, got {patch_size}")
    if seed is not None:
        torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if trainer_state is not None:
        rng.bit_generator.state = trainer_state["rng"]
        torch.set_rng_state(tensors["trainer.torch_rng"])
    units, photon_maps = cfg.units, None
    if model is not None:
        if units == "auto":
            units = model.units
        elif model.units != units:
            raise ValueError(f"the model was trained with units={model.units!r}; pass "
                             f"units={model.units!r} to continue training it")
    sampler = PatchSampler(images, axes=axes, dims=dims, patch_size=patch_size,
                           targets=targets, val_fraction=val_fraction, augment=augment, rng=rng)
    if units == "auto":
        units = auto_units(sampler, obj, conditioned)
        if units == "photons":  # only where every image has a map (else the data's units)
            try:
                mapped = _to_photons(sampler)
            except ValueError:
                units = "data"
    elif units == "photons":
        mapped = _to_photons(sampler)
    if units == "photons":  # each image in its own photo-electrons (a conditioned network)
        images, photon_maps, photon_read = mapped
        conditioned = True if conditioned == "auto" else conditioned
        sampler = PatchSampler(images, axes=[s.axes for s in sampler.sources], dims=dims,
                               patch_size=patch_size, targets=targets,
                               val_fraction=val_fraction, augment=augment, rng=rng)
    if conditioned == "auto":
        conditioned = auto_conditioned(sampler)
    conditioned = bool(conditioned)
    # a fresh conditioned network with the default range narrows it to the data once
    adaptive = conditioned and sigma_a is None and model is None and obj.sigma_range is None
    if preset is None:
        preset = default_preset(adaptive) if model is None else _preset_of(model.network)
    if steps is None:
        steps = PRESET_STEPS.get(preset, TRAIN_STEPS)
    if sigma_a is None and obj.sigma_range is not None:
        sigma_a = obj.sigma_range
    if sigma_a is None:
        if conditioned:
            sigma_a = (model.sigma_range if model is not None and model.conditioned
                       else SIGMA_RANGE)
        else:
            sigma_a = (0.05, 0.02)
    sigma_a = tuple(float(v) for v in sigma_a)
    if len(sigma_a) != 2 or not all(v > 0 for v in sigma_a):
        raise ValueError(f"sigma_a must be two values > 0 (normalised units), got {sigma_a}")
    if conditioned and not sigma_a[0] < sigma_a[1]:
        raise ValueError(f"sigma_a of a conditioned network is its training range (low, "
                         f"high) with low < high, got {sigma_a}")
    dev = resolve_device(device)
    precision = resolve_precision(dev, precision)
    if obj.kind != "score":
        extra_noise = 0.0
    elif extra_noise == "auto":
        extra_noise = model.extra_noise if model is not None else (
            sampler.quantisation_step() if obj.clean_data else
            photon_extra_noise(photon_read) if units == "photons" else auto_extra_noise(sampler))
    extra_noise = float(extra_noise)
    # the conditioned loss's weight over sigma_a, chosen by the data (continuous: 1/sigma_a^2)
    weighting = (resolve_sigma_weighting(extra_noise, counts=units == "photons")
                 if obj.kind == "score" and conditioned and obj.sigma_range is None else "none")

    if model is not None:
        if model.channels != sampler.channels:
            raise ValueError(f"the model has {model.channels} channel(s), the images "
                             f"{sampler.channels}")
        net = model.network
        offset, scale = model.offset, model.scale
    else:
        net = build_network(preset, dims=dims, channels=sampler.channels,
                            sigma_input=conditioned, **(network_overrides or {}))
        offset, scale = sampler.normalisation(rng=np.random.default_rng(
            None if seed is None else seed + 1))
    net = net.to(dev).train()
    if dims == 2 and dev.type == "cpu":
        net = net.to(memory_format=torch.channels_last)
    # the moving average is what is delivered: a checkpoint's model holds it, and the raw
    # weights that training continues from travel beside it (trainer.raw.*)
    average = None
    if ema is None and trainer_state is not None and trainer_state.get("ema") is not None:
        raise ValueError(f"{resume!s} was trained with ema={trainer_state['ema']}; pass "
                         f"ema={trainer_state['ema']} to resume it (its model holds the "
                         f"average, not the weights training continues from)")
    if ema is not None:
        average = copy.deepcopy(net).eval().requires_grad_(False)
        if trainer_state is not None and trainer_state.get("ema") is not None:
            raw = {k[len(_RAW):]: v for k, v in tensors.items() if k.startswith(_RAW)}
            if not raw:
                raise ValueError(f"{resume!s} holds no raw weights beside its average; "
                                 f"resume it with the ema it was trained with")
            net.load_state_dict(raw)
    delivered = net if average is None else average
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    if saved_opt is not None:
        opt.load_state_dict(saved_opt)
    shape = (1, -1) + (1,) * dims
    off_t = torch.tensor(offset, dtype=torch.float32, device=dev).reshape(shape)
    sc_t = torch.tensor(scale, dtype=torch.float32, device=dev).reshape(shape)
    extra_n = torch.tensor(extra_noise, dtype=torch.float32, device=dev) / sc_t

    def to_dev(a):
        t = torch.from_numpy(a).to(dev, non_blocking=True)
        if dims == 2 and dev.type == "cpu":
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def net_fn(z, sigma=None):
        with autocast(dev, precision):
            return net(z, sigma)

    step_now = [start_step]

    def loss_fn(x, t, sig, gen=None):
        ctx = LossContext(net=net_fn, step=step_now[0], steps=steps, generator=gen,
                          sigma_a=sig, extra_noise=extra_n if extra_noise else 0.0,
                          score_scale=SCORE_OUTPUT_SCALE,
                          sigma_range=tuple(cur_range) if conditioned else None,
                          weighting=weighting)
        return obj.loss(ctx, (x - off_t) / sc_t, None if t is None else (t - off_t) / sc_t)

    # the conditioned network's current training range; narrowed once (adaptive) at
    # ADAPT_AT of the steps to ADAPT_WIDTH either side of the sigma_a SURE prefers there
    cur_range = list(sigma_a)
    if trainer_state is not None and "sigma_range" in trainer_state:
        cur_range = [float(v) for v in trainer_state["sigma_range"]]
    adapt_step = int(ADAPT_AT * steps) if adaptive else None

    val_batch = None
    if val_fraction:
        vx, vt = sampler.draw(max(batch_size, 8), split="val", rng=np.random.default_rng(12345))
        val_batch = (to_dev(vx), to_dev(vt) if vt is not None else None)
    val_every = val_every or max(steps // 20, 1)

    # the settings as resolved (what the model file records), and what else it records
    record = dict(cfg.replace(
        preset=preset, steps=steps, dims=dims, patch_size=patch_size, batch_size=batch_size, lr=lr,
        extra_noise=extra_noise, conditioned=conditioned, sigma_a=sigma_a,
        precision=precision, units=units).to_dict(), device=str(dev), sigma_weighting=weighting)
    data_info = [{"shape": list(s.array.shape), "axes": s.axes, "dtype": str(s.array.dtype)}
                 for s in sampler.sources]
    for info, pm in zip(data_info, photon_maps or ()):
        info["photon_map"] = pm.to_dict()

    def make_model(step_done, stopped):
        meta = dict(model.meta) if model is not None else {}
        meta.pop("sigma_a_default", None)  # chosen again for the new weights
        meta.update(training=record, train_config=cfg.to_dict(), data=data_info,
                    steps_done=step_done, stopped_early=stopped, history=history,
                    units=units)
        if conditioned:
            meta["sigma_range"] = list(cur_range)
        else:
            meta["sigma_a_final"] = sigma_a_schedule(
                max(step_done - 1, 0), steps, start=sigma_a[0], end=sigma_a[1],
                every=anneal_every, hold=anneal_every)
        return ScoreModel(network=delivered, offset=offset, scale=scale,
                          axes=sampler.sources[0].axes,
                          kind=obj.kind,
                          extra_noise=extra_noise,
                          meta=meta)

    def save_checkpoint(step_done, stopped, m=None):
        m = make_model(step_done, stopped) if m is None else m
        opt_tensors, opt_plain = _optimizer_tensors(opt)
        opt_tensors["trainer.torch_rng"] = torch.get_rng_state()
        if average is not None:
            opt_tensors.update({_RAW + k: v.detach().cpu().contiguous()
                                for k, v in net.state_dict().items()})
        m.save(checkpoint, extra_tensors=opt_tensors,
               extra_header={"trainer_state": {"step": step_done, "optimizer": opt_plain,
                                               "rng": _jsonable(rng.bit_generator.state),
                                               "sigma_range": list(cur_range),
                                               "ema": ema}})

    t0 = time.perf_counter()
    stopped = False
    step = start_step
    for step in range(start_step, steps):
        if step == adapt_step and step > 0:
            picked = select_on_training_data(
                _training_units(make_model(step, False)), sampler, dev)
            net.train()
            cur_range = [max(sigma_a[0], min(picked) / ADAPT_WIDTH),
                         min(sigma_a[1], max(picked) * ADAPT_WIDTH)]
            record["sigma_a_adapted"] = picked
        sig = None if conditioned else sigma_a_schedule(
            step, steps, start=sigma_a[0], end=sigma_a[1], every=anneal_every,
            hold=anneal_every)
        for g in opt.param_groups:
            g["lr"] = lr_schedule(step, steps, lr)
        x, t = sampler.draw(batch_size)
        step_now[0] = step
        loss = loss_fn(to_dev(x), to_dev(t) if t is not None else None, sig)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if average is not None:
            with torch.no_grad():
                torch._foreach_lerp_(list(average.parameters()), list(net.parameters()),
                                     1.0 - ema)
        logs = {"loss": float(loss.detach()), "sigma_a": sig, "lr": opt.param_groups[0]["lr"],
                "elapsed": time.perf_counter() - t0}
        if conditioned:  # the range sampled this step (narrowed once when adaptive)
            logs["sigma_range"] = list(cur_range)
        if val_batch is not None and ((step + 1) % val_every == 0 or step + 1 == steps):
            net.eval()
            with torch.no_grad():
                gen = torch.Generator(device=dev).manual_seed(0)
                logs["val_loss"] = float(loss_fn(*val_batch, sig, gen))
            net.train()
        if (step + 1) % max(steps // 100, 1) == 0 or "val_loss" in logs:
            history.append({"step": step + 1, **logs})
        if checkpoint is not None and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            save_checkpoint(step + 1, False)
        if progress is not None and progress(step + 1, steps, logs) is False:
            stopped = True
            break
    done = step + 1 if steps > start_step else start_step
    net.eval()
    result = make_model(done, stopped)
    if conditioned and not obj.clean_data:  # where the score is evaluated when no image
        # chooses: on the data
        result.meta["sigma_a_default"] = float(np.median(
            select_on_training_data(_training_units(result), sampler, dev)))
    if checkpoint is not None:
        save_checkpoint(done, stopped, result)
    return result


def time_per_step(*, config: TrainConfig | None = None, channels: int = 1, device="auto",
                  repeats: int = 3, **settings) -> float:
    """Seconds one training step takes with these settings on this machine, measured.

    The settings are :func:`train`'s (a :class:`TrainConfig` or its fields as keywords);
    those that shape a step count: ``dims``, ``preset``, ``patch_size``, ``batch_size``,
    ``objective``, ``conditioned``, ``precision``. Without the data, ``preset=None`` times
    the small network only where ``conditioned=True`` is given (``train`` decides
    ``"auto"`` on the data), else the default one.

    A fresh network runs ``repeats`` real steps (the objective's loss, backward, AdamW)
    on random patches after one warm-up step; the median is returned. ``steps *
    time_per_step(...)`` is the training time to expect before it starts (the napari widget
    shows it). On this project's 2-core CPU: about 0.25 s for the default preset at the
    default batch and patch, a few seconds in all for the measurement.

    Examples
    --------
    >>> sec = scoredenoise.time_per_step(preset="small")        # doctest: +SKIP
    >>> print(f"1000 steps: about {1000 * sec / 60:.1f} min")  # doctest: +SKIP
    """
    cfg = (config if config is not None else TrainConfig()).replace(**settings)
    dims, preset, precision = cfg.dims, cfg.preset, cfg.precision
    obj = get_objective(cfg.objective)
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    patch_size, batch_size = _defaults(dims, cfg.patch_size, cfg.batch_size)
    # "auto" times the conditioned network: its step costs the same as the other's
    conditioned = cfg.conditioned is not False and obj.kind == "score"
    if preset is None:  # without the data: the small network only where conditioned=True
        preset = default_preset(cfg.conditioned is True and obj.kind == "score"
                                and obj.sigma_range is None and cfg.sigma_a is None)
    dev = resolve_device(device)
    precision = resolve_precision(dev, precision)
    gen = torch.Generator(device="cpu").manual_seed(0)
    net = build_network(preset, dims=dims, channels=channels, sigma_input=conditioned)
    net = net.to(dev).train()
    shape = (batch_size, channels) + tuple(np.broadcast_to(patch_size, (dims,)).tolist())
    x = torch.rand(shape, generator=gen).to(dev)
    t = torch.rand(shape, generator=gen).to(dev) if obj.needs_targets else None
    if dims == 2 and dev.type == "cpu":
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

    def net_fn(z, sigma=None):
        with autocast(dev, precision):
            return net(z, sigma)

    ctx = LossContext(net=net_fn, step=0, steps=1, generator=None, sigma_a=0.02,
                      extra_noise=0.0, score_scale=SCORE_OUTPUT_SCALE,
                      sigma_range=SIGMA_RANGE if conditioned else None)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        loss = obj.loss(ctx, x, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def _to_photons(sampler: PatchSampler) -> tuple[list, list[PhotonMap], float]:
    """The sampler's images each in its own photo-electrons (``units="photons"``): mapped by
    its own Poisson-Gaussian estimate (:func:`~scoredenoise.estimate_photon_map`); the maps,
    and the median read noise (photo-electrons)."""
    mapped, maps, reads = [], [], []
    for i, src in enumerate(sampler.sources):
        try:
            pm, read = _estimate(src.array, src.axes)
        except ValueError as exc:
            raise ValueError(f"training image {i}: {exc}; units='photons' maps each image by "
                             f"its own noise estimate: train in the data's units "
                             f"(units='data')") from None
        mapped.append(to_photons(src.array, pm, axes=src.axes))
        maps.append(pm)
        reads.extend(read)
    return mapped, maps, float(np.median(reads))


def photon_extra_noise(read_noise: float) -> float:
    """``extra_noise="auto"`` in photo-electrons (``units="photons"``): what brings the
    Gaussian part, read noise (the training images' median, photo-electrons) included, to
    :data:`PHOTON_SMOOTHING` photon steps, as :func:`auto_extra_noise` does in data units."""
    return float(math.sqrt(max(PHOTON_SMOOTHING ** 2 - read_noise ** 2, 0.0)))


def _training_units(model: ScoreModel) -> ScoreModel:
    """``model`` as a model of the training data as the sampler holds them: for a model in
    photo-electrons the mapped images are its data units (no map of their own)."""
    if model.units == "data":
        return model
    return dataclasses.replace(model, meta={**model.meta, "units": "data"})


def select_on_training_data(model: ScoreModel, sampler: PatchSampler, device,
                            images: int = 4, max_pixels: int = 2 ** 15) -> list[float]:
    """:func:`scoredenoise.select_sigma_a` on up to ``images`` training images, evenly
    spaced, each on a sample of ``max_pixels`` (their median is the model's
    ``sigma_a_default``, used where no image chooses; their spread sets the adaptive
    training range). Reads only those samples of a lazy stack."""
    n = len(sampler.sources)
    picks = np.unique(np.linspace(0, n - 1, min(n, images)).round().astype(int))
    return [select_sigma_a(model, sampler.sources[int(i)].array,
                           axes=sampler.sources[int(i)].axes, device=device,
                           max_pixels=max_pixels, factor=False)
            for i in picks]


def _jsonable(state):
    return json.loads(json.dumps(state, default=int))
