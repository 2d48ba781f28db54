"""Streaming large stacks (the old home of these names, kept for one release): lazy input
and chunk shapes (:mod:`scoredenoise.io`), the resumable chunk-by-chunk job into a file
(:mod:`scoredenoise.to_file`), and many files on one machine or a dask.distributed cluster
(:mod:`scoredenoise.batch`)."""

from .batch import denoise_files, make_client  # noqa: F401
from .io import (  # noqa: F401
    PLANE_CHUNK,
    Z_PLANE_CHUNK,
    _open_zarr,
    default_chunks,
    open_image,
)
from .to_file import (  # noqa: F401
    PARTIAL,
    StreamResult,
    cast_output,
    denoise_to_file,
)

__all__ = ["open_image", "denoise_to_file", "default_chunks", "StreamResult"]
