"""Lazy denoising of dask arrays: network and solver applied chunk by chunk with halos."""

from __future__ import annotations

import numpy as np

from . import _axes


def denoise_dask(image, model, noise_model, *, axes=None, device="auto", precision="fp32",
                 tile=512):
    """Lazy dask result of :func:`scoredenoise.denoise` for a dask array ``image``.

    Spatial chunks are made multiples of the network's pooling grid, and each chunk is computed
    with an overlap of ``model.halo`` pixels (the receptive field), so chunk origins sit on the
    grid of a whole-image pass. Models with a correlation operator A add a further halo for the
    FFT solve.
    """
    import dask.array as da

    from .api import _solve_canonical, effective_noise_model

    axes = model.resolve_axes(axes, image.ndim)
    m = model.network.config.multiple
    sp = [axes.index(a) for a in _axes.spatial_axes(model.dims)]
    chunks = {}
    for a in sp:
        c = max(image.chunksize[a] // m * m, m) if image.shape[a] > m else image.shape[a]
        chunks[a] = c
    if "C" in axes:
        chunks[axes.index("C")] = -1
    image = image.rechunk(chunks)
    halo = model.halo
    nm = effective_noise_model(model, noise_model) if noise_model is not None else None
    op = getattr(nm, "operator", None) or getattr(getattr(nm, "base", None), "operator", None)
    extra = 32 if op is not None else 0
    depth = {a: min(halo + extra, image.shape[a]) if a in sp else 0
             for a in range(image.ndim)}

    def block_fn(block):
        y = block.astype(np.float32, copy=False)
        if model.kind == "denoiser":
            return model.predict(y, axes=axes, device=device, precision=precision, tile=tile)
        s = model.score(y, axes=axes, device=device, precision=precision, tile=tile)
        return _solve_canonical(model, noise_model, y, s, axes)

    return da.map_overlap(block_fn, image, depth=depth, boundary="none", dtype=np.float32,
                          trim=True)
