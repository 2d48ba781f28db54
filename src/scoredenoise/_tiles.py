"""Tiling helpers of the network's pass: the grid of tiles over an image, and the mean of a
function over the 8 rotations and flips of the Y-X plane (test-time augmentation)."""

from __future__ import annotations

import numpy as np


def dihedral_mean(fn, image, axes: str, multiple: int, progress=None) -> np.ndarray:
    """The mean of ``fn`` over the 8 rotations and flips of the Y-X plane of ``image``, each
    output transformed back (test-time augmentation); ``fn(array, progress)`` keeps the
    shape and axes.

    The plane is first padded (reflected) at its far edges to a multiple of the network's
    pooling grid, so that every rotation keeps the grid where a whole-image pass has it: a
    chunk computed with its halo (whose origin is on the grid) then gives the same result as
    the whole image. The mean is equivariant: the result for a rotated or flipped image is the
    rotated or flipped result, exactly where the plane's sizes are multiples of the grid
    (elsewhere away from the padded edges)."""
    yi, xi = axes.index("Y"), axes.index("X")
    pads = [(0, 0)] * image.ndim
    for a in (yi, xi):
        pads[a] = (0, (-image.shape[a]) % multiple)
    mode = "reflect" if min(image.shape[yi], image.shape[xi]) > multiple else "symmetric"
    padded = np.pad(image, pads, mode=mode)
    acc = None
    for k, flip in ((k, f) for k in range(4) for f in (False, True)):
        i = 2 * k + flip
        a = np.rot90(padded, k, axes=(yi, xi))
        a = np.flip(a, axis=xi) if flip else a

        def sub(done, total, i=i):
            return None if progress is None else progress(i * total + done, 8 * total)

        r = np.asarray(fn(np.ascontiguousarray(a), sub), dtype=np.float64)
        r = np.flip(r, axis=xi) if flip else r
        r = np.rot90(r, -k, axes=(yi, xi))
        acc = r if acc is None else acc + r
    core = tuple(slice(0, n) for n in image.shape)
    return (acc[core] / 8.0).astype(np.float32)


def _tile_grid(spatial, sizes):
    import itertools

    ranges = [[slice(a, min(a + t, n)) for a in range(0, n, t)] for n, t in zip(spatial, sizes)]
    return list(itertools.product(*ranges))
