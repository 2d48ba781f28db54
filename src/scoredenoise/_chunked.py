"""Chunked denoising: network and solver applied chunk by chunk with halos.

:func:`chunk_plan` decides the chunks (multiples of the network's pooling grid), the halo (the
receptive field, plus a margin for the FFT solve of a correlation operator A) and the
function applied to each chunk with its halo. :func:`denoise_dask` turns the plan into a lazy
dask array; :mod:`scoredenoise.to_file` reads each chunk with its halo straight from the file.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import _axes
from ._rowstream import default_tile
from .smoothing import score_factor
from .solve import _check_channels, _has_operator, _solve_canonical

#: halo (pixels) added for the FFT solve of a correlation operator A (its kernel is 3x3; the
#: periodic FFT wraps at the block edge, which this margin keeps out of the kept core)
A_MARGIN = 32


@dataclass
class ChunkPlan:
    chunks: dict  # axis position -> chunk size (spatial: a multiple of the pooling grid)
    depth: dict  # axis position -> halo
    block_fn: Callable[[np.ndarray], np.ndarray]  # a chunk with its halo -> same shape, f32


def chunk_plan(shape, chunksize, model, noise_model, *, axes=None, device="auto",
               precision="fp32", tile=None, units="input", sigma_a=None,
               tta: bool = False) -> ChunkPlan:
    """How to denoise an array of ``shape`` in chunks of about ``chunksize``; a
    sigma-conditioned score is evaluated at ``sigma_a`` in every chunk (chosen once for the
    whole array: :meth:`ScoreModel.resolve_sigma_a`); ``tta``: the network's output
    averaged over the 8 rotations and flips of each chunk (:func:`~.model.dihedral_mean`)."""
    axes = model.resolve_axes(axes, len(shape))
    _check_channels(noise_model, shape, axes)
    m = model.network.config.multiple
    sp = [axes.index(a) for a in _axes.spatial_axes(model.dims)]
    halo = model.halo + (A_MARGIN if _has_operator(noise_model) else 0)
    chunks = {}
    for a in sp:
        c = max(chunksize[a] // m * m, m) if shape[a] > m else shape[a]
        # a chunk at least as large as its halo (dask's overlap needs it; also less waste)
        c = min(max(c, -(-min(halo, shape[a]) // m) * m), shape[a])
        chunks[a] = c
    if "C" in axes:
        chunks[axes.index("C")] = shape[axes.index("C")]
    depth = {a: min(halo, shape[a]) if a in sp else 0 for a in range(len(shape))}

    def block_fn(block):
        y = block.astype(np.float32, copy=False)
        t = _chunk_tile(block, sp, tile, halo)
        if model.kind == "denoiser":
            return model.predict(y, axes=axes, device=device, precision=precision, tile=t,
                                 tta=tta)
        s = model.predict(y, axes=axes, device=device, precision=precision, tile=t,
                          sigma_a=sigma_a, tta=tta) * np.float32(score_factor(sigma_a))
        return _solve_canonical(model, noise_model, y, s, axes, units, sigma_a)

    return ChunkPlan(chunks, depth, block_fn)


def _chunk_tile(block, spatial, tile: int | None, halo: int) -> int:
    """The network's tile for one chunk with its halo: the whole chunk (one pass, no second
    halo) unless it is larger than ``tile`` plus the halo allows. By default (``None``) a 2-D
    chunk is always one pass (on the CPU streamed in bands of rows, so its size costs no
    memory), a 3-D chunk one pass up to the model's default tile plus the halo."""
    size = max(block.shape[a] for a in spatial)
    if tile is None:
        if len(spatial) == 2:
            return size
        tile = default_tile(streamed=False)
    return max(tile, size) if size <= tile + 2 * halo else tile


def denoise_dask(image, model, noise_model, *, axes=None, device="auto", precision="fp32",
                 tile=None, units="input", sigma_a=None, tta: bool = False):
    """Lazy dask result of :func:`scoredenoise.denoise` for a dask array ``image``.

    Spatial chunks are made multiples of the network's pooling grid, and each chunk is computed
    with an overlap of ``model.halo`` pixels (the receptive field), so chunk origins sit on the
    grid of a whole-image pass. Models with a correlation operator A add a further halo for the
    FFT solve.
    """
    import dask.array as da

    plan = chunk_plan(image.shape, image.chunksize, model, noise_model, axes=axes,
                      device=device, precision=precision, tile=tile, units=units,
                      sigma_a=sigma_a, tta=tta)
    image = image.rechunk(plan.chunks)
    return da.map_overlap(plan.block_fn, image, depth=plan.depth, boundary="none",
                          dtype=np.float32, trim=True)


class ChunkCache:
    """Computed chunks kept by position, least recently used dropped beyond ``max_bytes``;
    ``computed`` counts the chunks the network actually ran on."""

    def __init__(self, max_bytes: int = 2 ** 30):
        self.max_bytes, self.nbytes, self.computed = int(max_bytes), 0, 0
        self._d: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        return None

    def put(self, key, value: np.ndarray) -> None:
        with self._lock:
            self.computed += 1
            self._d[key] = value
            self.nbytes += value.nbytes
            while self.nbytes > self.max_bytes and len(self._d) > 1:
                _, old = self._d.popitem(last=False)
                self.nbytes -= old.nbytes

    def __len__(self) -> int:
        return len(self._d)


def score_dask(image, model, *, axes=None, device="auto", precision="fp32", tile=None,
               cache: ChunkCache | None = None, sigma_a=None, tta: bool = False):
    """Lazy score of a dask array at ``sigma_a``: chunks with a halo of the receptive field,
    each computed once while ``cache`` keeps it (so a viewer that comes back to a plane, or a
    new noise model, does not run the network again)."""
    import dask.array as da

    plan = chunk_plan(image.shape, image.chunksize, model, None, axes=axes, device=device,
                      precision=precision, tile=tile)
    image = image.rechunk(plan.chunks)
    axes = model.resolve_axes(axes, image.ndim)
    sp = [axes.index(a) for a in _axes.spatial_axes(model.dims)]

    def fn(block, block_info=None):
        key = tuple(tuple(r) for r in block_info[0]["array-location"]) if block_info else None
        if cache is not None and key is not None:
            hit = cache.get(key)
            if hit is not None:
                return hit
        y = block.astype(np.float32, copy=False)
        t = _chunk_tile(block, sp, tile, model.halo)
        s = model.predict(y, axes=axes, device=device, precision=precision, tile=t,
                          sigma_a=sigma_a, tta=tta) * np.float32(score_factor(sigma_a))
        if cache is not None and key is not None:
            cache.put(key, s)
        return s

    return da.map_overlap(fn, image, depth=plan.depth, boundary="none", dtype=np.float32,
                          trim=True)


def solve_dask(image, score, model, noise_model, *, axes=None, units="input", sigma_a=None):
    """Lazy solve of a dask image with its (lazy or computed) score, evaluated at
    ``sigma_a``: element-wise per chunk, with a halo for a correlation operator A."""
    import dask.array as da

    axes = model.resolve_axes(axes, image.ndim)
    _check_channels(noise_model, image.shape, axes)
    op = _has_operator(noise_model)
    score = da.asarray(score).rechunk(image.chunks)
    sp = [axes.index(a) for a in _axes.spatial_axes(model.dims)]
    depth = {a: min(A_MARGIN, image.shape[a]) if (a in sp and op) else 0
             for a in range(image.ndim)}

    def fn(y, s):
        return _solve_canonical(model, noise_model, y.astype(np.float32, copy=False),
                                s.astype(np.float32, copy=False), axes, units, sigma_a)

    if not op:
        return da.map_blocks(fn, image, score, dtype=np.float32)
    return da.map_overlap(fn, image, score, depth=depth, boundary="none", dtype=np.float32,
                          trim=True, align_arrays=False)
