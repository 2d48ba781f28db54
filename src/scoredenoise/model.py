"""The trained model: network + normalisation + metadata, its inference and its file format.

Model files are safetensors files: the weights as tensors and every piece of metadata
(architecture, normalisation, training settings, data shape and axes, package version) as JSON
in the header. Loading never executes code from the file.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import _axes
from ._chunked import denoise_dask, score_dask
from ._device import autocast, resolve_device
from ._progress import Cancelled, ProgressFn
from ._progress import report as _report
from ._rowstream import band_rows, default_tile, stream_forward
from ._tiles import _tile_grid, dihedral_mean  # noqa: F401 (dihedral_mean: its old home)
from ._version import __version__
from .io import atomic_write
from .network import UNet, UNetConfig, build_network, network_info
from .smoothing import SIGMA_RANGE, SigmaA, photon_map_of, score_factor, select_sigma_a
from .solve import score_sigma_a  # noqa: F401 (its old home)
from .train_config import TrainConfig
from .units import PhotonMap, estimate_photon_map

__all__ = ["ScoreModel", "Score", "load_model", "ModelFileError", "Cancelled"]

FORMAT = "scoredenoise-model"
FORMAT_VERSION = 1
#: the network outputs SCORE_OUTPUT_SCALE * score in normalised units (outputs of order 1)
SCORE_OUTPUT_SCALE = 0.1
#: ``tta="auto"`` averages over the 8 orientations where they cost at most this many passes of
#: the default preset's network (same dims, channels, conditioning): the small preset's 8
#: passes cost 1.4x one (2-D) and gain +0.2 to +0.3 dB on W2S, +0.07 to +0.21 on FMD
#: (docs/training.md, "The small network by default for photon-starved data")
TTA_AUTO_COST = 1.5

class ModelFileError(ValueError):
    """A file that is not a readable scoredenoise model."""


class Score(np.ndarray):
    """A score array (numpy) that remembers the sigma_a its network was evaluated at.

    :meth:`ScoreModel.score` returns one; :func:`scoredenoise.denoise` (``score=``) reads
    ``sigma_a`` to remove that smoothing, whatever noise model it then solves with. Where
    sigma_a was chosen for the image it is a :class:`SigmaA`, whose ``factor`` the network's
    score was multiplied by (the values are the product). Slices keep it;
    ``numpy.asarray(score)`` gives a plain array without it.
    """

    sigma_a: float | None

    def __new__(cls, array, sigma_a: float | None):
        obj = np.asarray(array).view(cls)
        obj.sigma_a = (sigma_a if sigma_a is None or isinstance(sigma_a, SigmaA)
                       else float(sigma_a))
        return obj

    def __array_finalize__(self, obj):
        self.sigma_a = getattr(obj, "sigma_a", None)

    def __reduce__(self):  # pickles (dask workers) as the plain array plus sigma_a
        return (Score, (np.asarray(self), self.sigma_a))


@dataclass
class ScoreModel:
    """A trained network with its normalisation and metadata.

    ``kind`` is ``"score"`` for the score-function model of the method (its output is
    grad log p(y), solved with a noise model) or ``"denoiser"`` for direct denoisers
    (supervised and Noise2Noise baselines, whose output is the clean image).

    Attributes
    ----------
    network : UNet
    offset, scale : numpy.ndarray
        Per-channel normalisation, y_n = (y - offset) / scale.
    axes : str
        Axes of the training data (e.g. ``"ZYX"``); the default for inference.
    extra_noise : float
        Standard deviation (data units) of the extra Gaussian noise added to the data in
        training; :func:`scoredenoise.denoise` removes it as a mixture. (One per channel for
        a model bound to an image's photon map, :meth:`bind`.)
    meta : dict
        Training settings, data shapes, history; saved in the file.
    """

    network: UNet
    offset: np.ndarray
    scale: np.ndarray
    axes: str = "YX"
    kind: str = "score"
    extra_noise: float = 0.0
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.offset = np.asarray(self.offset, dtype=np.float64).reshape(-1)
        self.scale = np.asarray(self.scale, dtype=np.float64).reshape(-1)
        if np.ndim(self.extra_noise):  # per channel (a bound model)
            self.extra_noise = np.asarray(self.extra_noise, dtype=np.float64).reshape(-1)
        if self.kind not in ("score", "denoiser"):
            raise ValueError(f"kind must be 'score' or 'denoiser', got {self.kind!r}")
        if np.any(self.scale <= 0):
            raise ValueError(f"normalisation scale must be > 0, got {self.scale}")

    # ----- properties ------------------------------------------------------------------------

    @property
    def dims(self) -> int:
        return self.network.config.dims

    @property
    def channels(self) -> int:
        return self.network.config.in_channels

    @property
    def info(self) -> dict:
        """Architecture summary: parameters, FLOPs per pixel, receptive field."""
        return network_info(self.network)

    @property
    def conditioned(self) -> bool:
        """Whether the network is sigma-conditioned: it gives the score at any sigma_a of its
        training range (``sigma_range``), chosen per image (:meth:`score`)."""
        return bool(self.network.config.sigma_input)

    @property
    def train_config(self) -> TrainConfig | None:
        """The settings this model was trained with, as given (``train(config=...)`` repeats
        the run; files from before they were recorded: the resolved ones), or None."""
        given = self.meta.get("train_config", self.meta.get("training"))
        return None if given is None else TrainConfig.from_dict(given)

    @property
    def sigma_range(self) -> tuple[float, float]:
        """The sigma_a range a conditioned network was trained over (normalised units)."""
        lo, hi = self.meta.get("sigma_range", SIGMA_RANGE)
        return float(lo), float(hi)

    @property
    def sigma_a_final(self) -> float:
        """The AR-DAE perturbation at the end of training (normalised units)."""
        return float(self.meta.get("sigma_a_final", 0.0))

    @property
    def sigma_a_default(self) -> float:
        """The sigma_a a score is evaluated at when none is chosen for the image: for a
        conditioned network the one selected on its training data at the end of training
        (the middle of its range, in log, for a checkpoint), else the final sigma_a."""
        if not self.conditioned:
            return self.sigma_a_final
        if "sigma_a_default" in self.meta:
            return float(self.meta["sigma_a_default"])
        lo, hi = self.sigma_range
        return float(math.sqrt(lo * hi))

    @property
    def units(self) -> str:
        """The units the network was trained in: ``"data"`` (the data's own, one
        normalisation for every image) or ``"photons"`` (each image in its own
        photo-electrons, mapped by its own noise estimate: :meth:`bind`)."""
        return str(self.meta.get("units", "data"))

    @property
    def photon_map(self) -> PhotonMap | None:
        """The photon map of the image a bound model is for (:meth:`bind`), else None."""
        pm = self.meta.get("photon_map")
        return None if pm is None else PhotonMap(**pm)

    def bind(self, image=None, *, axes: str | None = None, photon_map=None,
             progress: ProgressFn | None = None) -> ScoreModel:
        """This model for one image: for a model trained in photo-electrons
        (``units="photons"``), a model in the image's own data units; any other model is
        returned as it is.

        The image is mapped by its own Poisson-Gaussian estimate (``photon_map`` if given, e.g.
        the one a :class:`SigmaA` carries, else :func:`~scoredenoise.estimate_photon_map` of
        ``image``): u = (y - offset) / gain per channel. The bound model folds the map into
        its normalisation (offset + gain * model offset, gain * model scale) and its training
        noise (gain * extra_noise), so it is an ordinary model of the data's units; the same
        network, nothing copied. :meth:`score`, :meth:`predict`, :func:`~scoredenoise.denoise`
        and the chunked paths bind by themselves (once per image, file or layer: the map
        travels with the score's sigma_a); call it to reuse one map for many images.

        Examples
        --------
        >>> model = scoredenoise.train(frames, units="photons")       # doctest: +SKIP
        >>> bound = model.bind(frame)                                 # doctest: +SKIP
        >>> bound.photon_map                                          # doctest: +SKIP
        PhotonMap(offset=(6.2,), gain=(21.7,))
        """
        if self.units != "photons":
            return self
        if photon_map is None:
            if image is None:
                raise ValueError("bind needs the image (or its photon_map)")
            axes = self.resolve_axes(axes, len(np.shape(image)))
            photon_map = estimate_photon_map(image, axes=axes, progress=progress)
        elif not isinstance(photon_map, PhotonMap):
            photon_map = PhotonMap(**photon_map)
        if photon_map.channels != self.channels:
            raise ValueError(f"the photon map has {photon_map.channels} channel(s) but the "
                             f"model {self.channels}")
        gain = np.asarray(photon_map.gain)
        extra = gain * self.extra_noise
        meta = {**self.meta, "units": "data", "photon_map": photon_map.to_dict()}
        return ScoreModel(network=self.network,
                          offset=np.asarray(photon_map.offset) + gain * self.offset,
                          scale=gain * self.scale, axes=self.axes, kind=self.kind,
                          extra_noise=float(extra[0]) if extra.size == 1 else extra,
                          meta=meta)

    def _bound(self, image, axes, sigma_a) -> ScoreModel:
        """:meth:`bind` with the map ``sigma_a`` carries, if any (else estimated)."""
        return self.bind(image, axes=axes, photon_map=photon_map_of(sigma_a))

    def smoothing_sigma(self, channel: int = 0, sigma_a: float | None = None) -> float:
        """Std (data units) of the Gaussian noise the learned score includes beyond the data's
        own: the extra training noise and sigma_a (``sigma_a_default`` unless given), removed
        at solve time. A model trained in photo-electrons needs the image's map: a sigma_a
        from :meth:`score` or :meth:`resolve_sigma_a` carries it."""
        sig = self.sigma_a_default if sigma_a is None else float(sigma_a)
        gain = 1.0
        if self.units == "photons":
            pm = photon_map_of(sigma_a)
            if pm is None:
                raise ValueError(
                    "this model was trained with each image in its own photo-electrons "
                    "(units='photons'): the solve needs the image's photon map; use the "
                    "score from model.score(image) (its sigma_a carries the map), or "
                    "model.bind(image)")
            gain = pm.gain_of(channel)
        sa = sig * float(self.scale[min(channel, self.scale.size - 1)])
        extra = np.atleast_1d(self.extra_noise)
        return gain * float(np.hypot(float(extra[min(channel, extra.size - 1)]), sa))

    @property
    def tta_default(self) -> bool:
        """What ``tta="auto"`` means for this model: the score averaged over the 8
        orientations of the Y-X plane where the network is so small that they cost at most
        :data:`TTA_AUTO_COST` passes of the default preset's network (the small preset in 2-D);
        off for direct denoisers (+0.05 dB on W2S) and larger score networks (8x the time)."""
        if self.kind != "score":
            return False
        cfg = self.network.config
        ref = _preset_flops(cfg.dims, cfg.in_channels, bool(cfg.sigma_input))
        return 8 * self.info["flops_per_pixel"] <= TTA_AUTO_COST * ref

    def resolve_tta(self, tta) -> bool:
        """``tta`` as a bool: ``"auto"`` is :attr:`tta_default`."""
        if isinstance(tta, str):
            if tta != "auto":
                raise ValueError(f"tta must be True, False or 'auto', got {tta!r}")
            return self.tta_default
        return bool(tta)

    @property
    def halo(self) -> int:
        """Overlap (pixels) between tiles: the receptive field rounded up to the pooling grid."""
        m = self.network.config.multiple
        r = self.info["receptive_field_radius"]
        return int(-(-r // m) * m)

    def __repr__(self) -> str:
        i = self.info
        return (f"ScoreModel(kind={self.kind!r}, dims={self.dims}, channels={self.channels}, "
                f"axes={self.axes!r}, parameters={i['parameters']}, "
                f"trained_steps={self.meta.get('steps_done', 0)})")

    # ----- inference -------------------------------------------------------------------------

    def resolve_axes(self, axes: str | None, ndim: int) -> str:
        """``axes`` checked for this model; by default the training axes when the number of
        dimensions matches, else inferred from ``ndim``."""
        if axes is None and len(self.axes) == ndim:
            axes = self.axes
        return _axes.check_axes(axes, ndim, self.dims)

    def _check_channels(self, n_c: int, axes: str) -> None:
        if n_c != self.channels:
            raise ValueError(
                f"the model was trained on {self.channels} channel(s) but the image has {n_c} "
                f"(axes {axes!r}); give axes with a C of the right size")

    def predict(self, image, *, axes: str | None = None, device="auto",
                precision: str = "fp32", tile: int | None = None,
                progress: ProgressFn | None = None,
                batch_size: int | None = None, sigma_a: float | None = None,
                tta: bool | str = False) -> np.ndarray:
        """Raw network output in data units: the score (kind "score") or the clean image.

        ``sigma_a`` (normalised units): where a sigma-conditioned network is evaluated
        (default ``sigma_a_default``); see :meth:`score`. ``tta``: the mean of the outputs
        for the 8 rotations and flips of the Y-X plane (test-time augmentation,
        :func:`dihedral_mean`): 8x the cost, equivariant to them; ``"auto"``:
        :attr:`tta_default`.

        The result equals one whole-image pass of the network, computed with bounded memory:

        - on the CPU, 2-D images stream through the network in bands of rows (see
          :mod:`scoredenoise._rowstream`): nothing is computed twice and the activations of a
          band stay in cache; only images wider than ``tile`` (default 4096) are cut into
          strips along X, with an overlap of :attr:`halo` pixels;
        - otherwise (GPU, 3-D networks) in tiles of ``tile`` pixels per spatial axis (default
          512) with an overlap of :attr:`halo` pixels, at origins on the network's pooling
          grid. ``batch_size`` planes of a stack go through the network at once (default 1 on
          the CPU and 8 on a GPU).
        """
        image = np.asarray(image)
        axes = self.resolve_axes(axes, image.ndim)
        if self.units == "photons":  # in the image's own units (the map sigma_a carries)
            return self._bound(image, axes, sigma_a).predict(
                image, axes=axes, device=device, precision=precision, tile=tile,
                progress=progress, batch_size=batch_size, sigma_a=sigma_a, tta=tta)
        if self.resolve_tta(tta):
            return dihedral_mean(
                lambda a, prog: self.predict(a, axes=axes, device=device,
                                             precision=precision, tile=tile, progress=prog,
                                             batch_size=batch_size, sigma_a=sigma_a),
                image, axes, self.network.config.multiple, progress)
        canon, info = _axes.to_canonical(image, axes, self.dims)
        self._check_channels(canon.shape[1], axes)
        if self.conditioned:
            sigma_a = self.sigma_a_default if sigma_a is None else float(sigma_a)
            if not sigma_a > 0:
                raise ValueError(f"sigma_a must be > 0, got {sigma_a}")
        elif sigma_a is not None:
            raise ValueError("this model's network is not sigma-conditioned (trained with "
                             "conditioned=False or by an older scoredenoise): its score is "
                             "fixed; drop sigma_a")
        dev = resolve_device(device)
        net = self.network.to(dev).eval()
        cuda = dev.type == "cuda"
        stream = self.dims == 2 and not cuda
        if self.dims == 2 and dev.type == "cpu":
            net = net.to(memory_format=torch.channels_last)
        m = self.network.config.multiple
        tile = default_tile(stream) if tile is None else tile
        tile = max(m, int(tile) // m * m)
        halo = self.halo
        spatial = canon.shape[2:]
        # streaming: whole columns (the first spatial axis is never cut), strips of `tile`
        sizes = (max(spatial[0], 1),) + (tile,) * (self.dims - 1) if stream else \
            (tile,) * self.dims
        tiles = _tile_grid(spatial, sizes)
        out = np.empty(canon.shape, dtype=np.float32)
        off = self.offset.reshape((1, -1) + (1,) * self.dims).astype(np.float32)
        sc = self.scale.reshape((1, -1) + (1,) * self.dims).astype(np.float32)
        # progress in units of work: a tile, or a band of rows of a streamed tile
        batch = max(1, int(batch_size)) if batch_size else (8 if cuda else 1)
        n_s = canon.shape[0]
        if stream:  # bands of rows per streamed tile (its rows: the padded height)
            rows = band_rows(math.prod(min(n, t + 2 * halo)
                                       for n, t in zip(spatial[1:], sizes[1:])), m)
            steps = -(-(spatial[0] + (-spatial[0]) % m) // rows)
        else:
            rows, steps = None, 1
        total = n_s * len(tiles) * steps
        done = 0
        _report(progress, 0, total)

        def band_done(_rows_done, _rows_total):
            nonlocal done
            done += 1
            _report(progress, done, total)

        # CPU: one plane at a time is fastest (measured); GPU: planes of a stack at the same
        # tile position go in one batch, copied from pinned memory without blocking
        with torch.inference_mode():
            for s0 in range(0, n_s, batch):
                sl = slice(s0, min(s0 + batch, n_s))
                for core in tiles:
                    region = tuple(slice(max(0, c.start - halo), min(n, c.stop + halo))
                                   for c, n in zip(core, spatial))
                    block = (canon[(sl, slice(None)) + region].astype(np.float32) - off) / sc
                    t = torch.from_numpy(np.ascontiguousarray(block))
                    t = t.pin_memory().to(dev, non_blocking=True) if cuda else t
                    if self.dims == 2 and not cuda:
                        t = t.contiguous(memory_format=torch.channels_last)
                    with autocast(dev, precision):
                        if stream:
                            r = stream_forward(net, t, rows=rows, progress=band_done,
                                               sigma=sigma_a)
                        else:
                            r = net(t, sigma_a)
                    r = r.float().cpu().numpy()
                    inner = tuple(slice(c.start - g.start, c.stop - g.start)
                                  for c, g in zip(core, region))
                    out[(sl, slice(None)) + core] = r[(slice(None), slice(None)) + inner]
                    if not stream:
                        done += sl.stop - sl.start
                        _report(progress, done, total)
        if self.kind == "score":
            # the score of y = scale * y_n + offset is s_n / scale
            out /= sc * SCORE_OUTPUT_SCALE
        else:
            out = out * sc + off
        return _axes.from_canonical(out, info)

    def resolve_sigma_a(self, image, sigma_a="auto", noise_model=None, *, axes=None,
                        device="auto", precision: str = "fp32", progress=None,
                        factor: bool = True) -> float:
        """The sigma_a to evaluate the network at for ``image``: ``"auto"`` chooses it on the
        image by SURE (:func:`scoredenoise.select_sigma_a`, under ``noise_model`` if given)
        for a conditioned network, with the factor of its score (a :class:`SigmaA`); a
        number is used as given (a :class:`SigmaA` with its factor, a plain number at factor
        1); an unconditioned network has its fixed one. ``factor=False``: "auto" chooses
        sigma_a alone (a plain float). A model trained in photo-electrons
        (``units="photons"``) gives a :class:`SigmaA` that carries the image's photon map
        too (the one ``sigma_a`` carries, else estimated on ``image``), chosen on the image
        in its own units (:meth:`bind`)."""
        if self.units == "photons":
            bound = self._bound(image, axes, sigma_a)
            sig = bound.resolve_sigma_a(image, sigma_a, noise_model, axes=axes, device=device,
                                        precision=precision, progress=progress,
                                        factor=factor)
            return SigmaA(float(sig), score_factor(sig), bound.photon_map)
        if not self.conditioned:
            if sigma_a not in ("auto", None):
                raise ValueError("this model's network is not sigma-conditioned: its score "
                                 "is fixed; drop sigma_a")
            return self.sigma_a_final
        if sigma_a in ("auto", None):
            return select_sigma_a(self, image, noise_model, axes=axes, device=device,
                                  precision=precision, progress=progress, factor=factor)
        value = float(sigma_a)
        if not value > 0:
            raise ValueError(f"sigma_a must be > 0 or 'auto', got {value}")
        return sigma_a if isinstance(sigma_a, SigmaA) else value  # keeps a chosen factor

    def score(self, image, *, axes: str | None = None, sigma_a="auto", noise_model=None,
              device="auto", precision: str = "fp32", tile: int | None = None,
              progress: ProgressFn | None = None, batch_size: int | None = None, cache=None,
              tta: bool | str = "auto"):
        """The score s(y) = grad_y log p(y) of ``image``, in 1/data units, same shape.

        Compute it once and pass it to :func:`scoredenoise.denoise` (``score=``) to try
        noise models and parameters without running the network again.

        A sigma-conditioned network (the default since 0.2) gives the score of the data
        smoothed by a Gaussian of std ``sigma_a`` (normalised units), which the solve
        removes. ``sigma_a="auto"`` (default) chooses it for this image by Stein's unbiased
        risk estimate (:func:`scoredenoise.select_sigma_a`: a dozen network passes on a
        sample of the image), under ``noise_model`` if given, else under the noise estimated
        from the image; a number sets it. The result is a :class:`Score` that carries it as
        ``.sigma_a`` (a lazy score: the attribute of the dask array), so that ``denoise``
        removes what the network was evaluated at whatever noise model it then solves with.

        A dask array gives a lazy score (chunks with a halo of the receptive field); pass a
        :class:`scoredenoise.ChunkCache` as ``cache`` to keep computed chunks, so that
        looking at a plane again, or solving with another noise model, reuses them.

        ``tta=True`` averages the score over the 8 rotations and flips of the Y-X plane
        (test-time augmentation; sigma_a is still chosen without it): 8x the network's cost
        for +0.1 to +0.3 dB on the real sets of docs/benchmarks.md. ``"auto"`` (default):
        on where the network is small enough that the 8 passes cost at most 1.5 passes of
        the default preset's network (:attr:`tta_default`: the small preset, which
        ``train`` picks for photon-starved data), off otherwise.

        Examples
        --------
        >>> s = model.score(noisy)                                     # doctest: +SKIP
        >>> s.sigma_a                                                  # doctest: +SKIP
        0.083
        >>> x = scoredenoise.denoise(noisy, model, "poisson-gaussian", score=s,
        ...                          gain=2.0, offset=100, read_noise=3)  # doctest: +SKIP
        """
        if self.kind != "score":
            raise ValueError(f"this model is a {self.kind!r} model: it predicts the clean image "
                             f"directly and has no score; use scoredenoise.denoise")
        tta = self.resolve_tta(tta)
        sig = self.resolve_sigma_a(image, sigma_a, noise_model, axes=axes, device=device,
                                   precision=precision)
        if self.units == "photons":  # the score in the image's units, with its map
            out = self.bind(photon_map=sig.photon_map).score(
                image, axes=axes, sigma_a=sig if self.conditioned else "auto",
                noise_model=noise_model, device=device, precision=precision, tile=tile,
                progress=progress, batch_size=batch_size, cache=cache, tta=tta)
            out.sigma_a = sig
            return out
        arg = sig if self.conditioned else None
        if type(image).__module__.startswith("dask"):
            out = score_dask(image, self, axes=axes, device=device, precision=precision,
                             tile=tile, cache=cache, sigma_a=arg, tta=tta)
            out.sigma_a = sig
            return out
        out = self.predict(image, axes=axes, device=device, precision=precision, tile=tile,
                           progress=progress, batch_size=batch_size, sigma_a=arg, tta=tta)
        if score_factor(sig) != 1.0:
            out *= np.float32(score_factor(sig))
        return Score(out, sig)

    def evaluate(self, image, *, axes: str | None = None, sigma_a="auto", noise_model=None,
                 device="auto", precision: str = "fp32", tile: int | None = None,
                 progress: ProgressFn | None = None, cache=None, tta: bool | str = "auto"):
        """What the network gives for ``image``, whatever kind of model this is: the score
        (:meth:`score`, a :class:`Score` with its ``sigma_a``) of a score model, the clean
        image of a direct denoiser (a related method's network, which has no noise model:
        ``sigma_a`` and ``noise_model`` are then ignored). Either way
        :func:`scoredenoise.denoise` (``score=``) turns it into the result without running
        the network again, so a caller (the napari plugin) need not ask which kind it holds.
        A dask array gives a lazy result. ``tta``: as in :meth:`score` (``"auto"``:
        :attr:`tta_default`).

        Examples
        --------
        >>> out = model.evaluate(noisy)                                 # doctest: +SKIP
        >>> x = scoredenoise.denoise(noisy, model, "gaussian", score=out,
        ...                          sigma=0.1)                          # doctest: +SKIP
        """
        if self.kind == "score":
            return self.score(image, axes=axes, sigma_a=sigma_a, noise_model=noise_model,
                              device=device, precision=precision, tile=tile,
                              progress=progress, cache=cache, tta=tta)
        tta = self.resolve_tta(tta)
        if type(image).__module__.startswith("dask"):
            return denoise_dask(image, self, None, axes=axes, device=device,
                                precision=precision, tile=tile, tta=tta)
        return self.predict(image, axes=axes, device=device, precision=precision, tile=tile,
                            progress=progress, tta=tta)

    # ----- files -----------------------------------------------------------------------------

    def _header(self) -> dict:
        return {
            "kind": self.kind,
            "architecture": self.network.config.to_dict(),
            "normalisation": {"offset": self.offset.tolist(), "scale": self.scale.tolist()},
            "axes": self.axes,
            "extra_noise": (self.extra_noise.tolist() if isinstance(self.extra_noise, np.ndarray)
                            else self.extra_noise),  # (per channel: a bound model)
            "package_version": __version__,
            "meta": self.meta,
        }

    def _file_parts(self, extra_tensors=None, extra_header=None) -> tuple[dict, dict]:
        """Tensors and metadata of a model file (shared by :meth:`save` and
        :meth:`to_bytes`)."""
        tensors = {f"net.{k}": v.detach().cpu().contiguous()
                   for k, v in self.network.state_dict().items()}
        tensors.update(extra_tensors or {})
        header = self._header()
        header.update(extra_header or {})
        return tensors, {"format": FORMAT, "format_version": str(FORMAT_VERSION),
                         "header": json.dumps(header)}

    def to_bytes(self) -> bytes:
        """The model file's content (safetensors), e.g. to send it to dask workers;
        :func:`model_from_bytes` reads it back."""
        from safetensors.torch import save

        tensors, metadata = self._file_parts()
        return save(tensors, metadata=metadata)

    def save(self, path: str | os.PathLike, *, extra_tensors: dict | None = None,
             extra_header: dict | None = None) -> Path:
        """Write the model to one safetensors file, atomically (temporary file + rename).

        Returns the path written. The suffix ``.sdmodel`` is conventional.
        """
        from safetensors.torch import save_file

        path = Path(path)
        tensors, metadata = self._file_parts(extra_tensors, extra_header)
        with atomic_write(path, suffix=".tmp") as tmp:
            save_file(tensors, tmp, metadata=metadata)
        return path


@functools.cache
def _preset_flops(dims: int, channels: int, conditioned: bool,
                  preset: str = "default") -> float:
    """FLOPs per pixel of a preset's network (the reference of :attr:`ScoreModel.tta_default`)."""
    net = build_network(preset, dims=dims, channels=channels, sigma_input=conditioned)
    return float(network_info(net)["flops_per_pixel"])


def read_model_file(path: str | os.PathLike) -> tuple[dict, dict]:
    """Read (header, tensors) of a model file, with clear errors for foreign files."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(
            f"{str(path)!r} is not a scoredenoise model file (not a readable safetensors file: "
            f"{exc}); was it truncated, or made by another program?") from None
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{str(path)!r} is a safetensors file but not a scoredenoise model "
                             f"(format {meta.get('format')!r})")
    if int(meta.get("format_version", "0")) > FORMAT_VERSION:
        raise ModelFileError(f"{str(path)!r} was written by a newer scoredenoise (format "
                             f"{meta['format_version']}); upgrade scoredenoise to read it")
    try:
        header = json.loads(meta["header"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{str(path)!r}: damaged metadata ({exc})") from None
    return header, tensors


#: the sizes a model file may declare (checked before anything is allocated)
_ARCH_LIMITS = {"dims": (2, 3), "in_channels": (1, 64), "out_channels": (1, 64),
                "base_channels": (1, 1024), "depth": (0, 8), "convs_per_level": (1, 8)}


def _check_header(header, tensors: dict, source: str) -> UNetConfig:
    """Validate a model file's header and weight shapes (schema and sizes) before anything
    is built; errors name the file and the field."""
    def bad(name, problem):
        raise ModelFileError(f"{source}: {name} {problem}; the file is damaged or was not "
                             f"written by scoredenoise (save or train the model again)")

    if not isinstance(header, dict):
        bad("header", "is not a JSON object")
    for key in ("architecture", "normalisation"):
        if not isinstance(header.get(key), dict):
            bad(f"field {key!r}", "is missing")
    arch = header["architecture"]
    fields = {f.name for f in dataclasses.fields(UNetConfig)}
    if set(arch) - fields:
        bad("architecture", f"has unknown fields {sorted(set(arch) - fields)}")
    for key, (lo, hi) in _ARCH_LIMITS.items():
        v = arch.get(key)
        if key in arch and (isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi):
            bad(f"architecture.{key}", f"must be an integer in {lo}-{hi}, got {v!r}")
    for key in ("sigma_input", "sigma_modulation"):
        if not isinstance(arch.get(key, False), bool):
            bad(f"architecture.{key}", f"must be true or false, got {arch[key]!r}")
    cfg = UNetConfig(**arch)
    with torch.device("meta"):  # the shapes the architecture implies, nothing allocated
        expected = {f"net.{k}": tuple(v.shape) for k, v in UNet(cfg).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in tensors.items() if k.startswith("net.")}
    if expected != got:
        wrong = sorted(set(expected) ^ set(got)) or sorted(
            k for k in expected if expected[k] != got[k])
        bad("weights", f"do not match the stored architecture ({', '.join(wrong[:3])})")
    norm = header["normalisation"]
    for key in ("offset", "scale"):
        try:
            v = np.asarray(norm[key], np.float64).reshape(-1)
        except (KeyError, TypeError, ValueError):
            bad(f"normalisation.{key}", "is missing or not a list of numbers")
        if v.size != cfg.in_channels or not np.isfinite(v).all() or \
                (key == "scale" and not (v > 0).all()):
            bad(f"normalisation.{key}", f"must be {cfg.in_channels} finite number(s)"
                f"{' > 0' if key == 'scale' else ''}, got {norm[key]!r}")
    if header.get("kind", "score") not in ("score", "denoiser"):
        bad("kind", f"must be 'score' or 'denoiser', got {header['kind']!r}")
    axes = header.get("axes", "YX")
    if not isinstance(axes, str) or set(axes) - set("TCZYXS") or len(set(axes)) != len(axes):
        bad("axes", f"must be letters from TCZYXS, each once, got {axes!r}")
    extra = header.get("extra_noise", 0.0)
    values = extra if isinstance(extra, list) and len(extra) == cfg.in_channels else [extra]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or
           v < 0 for v in values):
        bad("extra_noise", f"must be a finite number >= 0 (or one per channel), got {extra!r}")
    meta = header.get("meta", {})
    if not isinstance(meta, dict):
        bad("meta", "is not a JSON object")
    for key in ("sigma_a_default", "sigma_a_final"):
        v = meta.get(key)
        if v is not None and (not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0):
            bad(f"meta.{key}", f"must be a finite number >= 0, got {v!r}")
    rng = meta.get("sigma_range")
    if rng is not None:
        try:
            lo, hi = (float(r) for r in rng)
            ok = 0 < lo < hi < math.inf
        except (TypeError, ValueError):
            ok = False
        if not ok:
            bad("meta.sigma_range", f"must be two numbers 0 < low < high, got {rng!r}")
    return cfg


def model_from_parts(header: dict, tensors: dict, source: str = "model file") -> ScoreModel:
    net = UNet(_check_header(header, tensors, source))
    state = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelFileError(f"model weights do not match the stored architecture: {exc}") \
            from None
    norm = header["normalisation"]
    return ScoreModel(network=net, offset=norm["offset"], scale=norm["scale"],
                      axes=header.get("axes", "YX"), kind=header.get("kind", "score"),
                      extra_noise=(header["extra_noise"] if isinstance(
                          header.get("extra_noise"), list) else
                          float(header.get("extra_noise", 0.0))),
                      meta=header.get("meta", {}))


def model_from_bytes(blob: bytes) -> ScoreModel:
    """A model from :meth:`ScoreModel.to_bytes` (safetensors; no code is executed)."""
    from safetensors.torch import load

    try:
        tensors = load(blob)
        meta = _safetensors_metadata(blob)
        header = json.loads(meta["header"])
    except Exception as exc:  # noqa: BLE001 (safetensors and json raise several types for damaged data)
        raise ModelFileError(f"not a scoredenoise model ({type(exc).__name__}: {exc})") \
            from None
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"not a scoredenoise model (format {meta.get('format')!r})")
    return model_from_parts(header, tensors)


def _safetensors_metadata(blob: bytes) -> dict:
    """The ``__metadata__`` of a safetensors buffer (an 8-byte length, then a JSON header)."""
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8:8 + n]).get("__metadata__", {})


def load_model(path: str | os.PathLike) -> ScoreModel:
    """Load a model file written by :meth:`ScoreModel.save` (or a training checkpoint).

    Never executes code from the file: weights are read with safetensors.

    Examples
    --------
    >>> model = scoredenoise.load_model("cells.sdmodel")   # doctest: +SKIP
    """
    header, tensors = read_model_file(path)
    return model_from_parts(header, tensors, repr(str(path)))
