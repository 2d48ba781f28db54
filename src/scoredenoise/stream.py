"""Streaming large stacks: lazy input, chunk-by-chunk denoising, atomic and resumable output.

A stack larger than memory is opened lazily (TIFF through ``tifffile``'s zarr store, or a
zarr / OME-Zarr folder) as a dask array, denoised chunk by chunk (each chunk with a halo of the
network's receptive field, at origins on its pooling grid, so the result equals one
whole-image pass), and written chunk by chunk:

1. every finished chunk goes into a hidden working zarr folder beside the output
   (``.NAME.partial.zarr``), and a marker records it; an interrupted run (crash, Ctrl-C,
   ``cancel``) resumes from the finished chunks when run again with the same settings;
2. at the end the working folder becomes the output: renamed (zarr), or streamed page by page
   into a temporary TIFF that is then renamed (TIFF). The final name never holds a partial
   result.

Memory stays near one chunk with its halo, whatever the file size.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _axes
from ._chunked import chunk_plan
from ._progress import Cancelled, ProgressFn
from .estimate import estimate_noise as estimate
from .io import ImageData, atomic_write, read_image
from .model import ScoreModel, model_from_bytes
from .solve import check_units, resolve_noise_models

__all__ = ["open_image", "denoise_to_file", "default_chunks", "StreamResult"]

#: working folder suffix; a run with the same settings resumes from it
PARTIAL = ".partial.zarr"


def open_image(source, *, axes: str | None = None, chunks=None) -> ImageData:
    """Open a TIFF file, a zarr / OME-Zarr folder or an array lazily, as a dask array.

    Parameters
    ----------
    source : path or array_like
        A TIFF file (read through ``tifffile``'s zarr store: nothing is loaded until a chunk
        is computed), a zarr folder (an OME-Zarr image uses its full-resolution level), or a
        numpy / zarr / dask array.
    axes : str, optional
        Axes letters (TCZYXS); default from the file's metadata (ImageJ / OME TIFF, OME-Zarr
        or the attributes written by scoredenoise), else inferred from the dimensions.
    chunks : dict or tuple, optional
        Dask chunks, or a dict by axis letter (``{"Y": 512, "X": 512}``; the other axes by
        default); default :func:`default_chunks` (one plane, at most 2048x2048, per chunk;
        512x512 with a Z axis; see docs/large-data.md).

    Returns
    -------
    ImageData
        ``data`` is a dask array; axes, pixel sizes and metadata as in the file.
    """
    import dask.array as da

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        img = _open_zarr(path) if path.is_dir() else read_image(path, lazy=True)
    elif isinstance(source, ImageData):
        img = source
    else:
        img = ImageData(source, "")
    ndim = len(img.shape)
    img.axes = _axes.check_axes(axes or img.axes or None, ndim, 2)
    data = img.data
    if isinstance(chunks, dict):  # per axis letter, the others by default
        unknown = set(chunks) - set(img.axes)
        if unknown:
            raise ValueError(f"chunks name axes {''.join(sorted(unknown))} that the image "
                             f"(axes {img.axes!r}) lacks")
        base = default_chunks(img.shape, img.axes)
        chunks = tuple(min(int(chunks.get(a, c)), n)
                       for a, c, n in zip(img.axes, base, img.shape))
    if not isinstance(data, da.Array):
        # one dask chunk per file chunk would be too fine (TIFF strips): read with ours
        want = default_chunks(img.shape, img.axes) if chunks is None else chunks
        data = da.from_array(data, chunks=want, asarray=False, lock=False)
    elif chunks is not None:
        data = data.rechunk(chunks)
    img.data = data
    return img


def _open_zarr(path: Path) -> ImageData:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # noqa: BLE001 (zarr raises several types for non-zarr folders)
        raise ValueError(f"{str(path)!r} is a folder but not a zarr store ({exc}); give a TIFF "
                         f"file or a zarr / OME-Zarr folder") from None
    attrs = dict(node.attrs)
    axes, pixel, unit = attrs.get("axes", ""), dict(attrs.get("pixel_size", {})), \
        attrs.get("unit")
    if not hasattr(node, "shape"):  # a group: OME-Zarr multiscales, level 0
        ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
        if not ms:
            raise ValueError(f"{str(path)!r} is a zarr group without OME-Zarr multiscales; "
                             f"give the array's folder")
        level = ms[0]["datasets"][0]
        arr = node[level["path"]]
        names = [a["name"] if isinstance(a, dict) else a for a in ms[0].get("axes", [])]
        axes = "".join(n.upper()[0] for n in names) if names else ""
        for t in level.get("coordinateTransformations", []):
            if t.get("type") == "scale":
                pixel = {a: float(s) for a, s in zip(axes, t["scale"]) if a in "ZYX"}
        units = [a.get("unit") for a in ms[0].get("axes", []) if isinstance(a, dict)]
        unit = next((u for u in units[::-1] if u), None)
        node = arr
    extra = {k: v for k, v in attrs.items() if k not in ("axes", "pixel_size", "unit",
                                                          "multiscales", "ome")}
    return ImageData(node, axes, path, pixel, unit, extra)


#: the default chunk's side along Y and X (``default_chunks``), and with a Z axis
PLANE_CHUNK = 2048
Z_PLANE_CHUNK = 512


def default_chunks(shape, axes: str, *, plane: int | None = None, depth: int = 64) -> tuple:
    """Chunks for streaming: one plane (at most ``plane`` pixels a side) of each Y/X, Z up to
    ``depth`` slices (3-D networks read Z chunks), channels whole, other axes 1.

    ``plane`` defaults to 2048 (a 2-D network streams a chunk in bands of rows, so a large
    chunk costs little memory and saves the halo's recomputation: 1.11x the work at 2048
    against 1.49x at 512), and to 512 when there is a Z axis (64 slices of 2048^2 would be a
    gigabyte per chunk)."""
    if plane is None:
        plane = Z_PLANE_CHUNK if "Z" in axes else PLANE_CHUNK
    out = []
    for n, a in zip(shape, axes):
        if a in "YX":
            out.append(min(n, plane))
        elif a == "C":
            out.append(n)
        elif a == "Z":
            out.append(min(n, depth))
        else:
            out.append(1)
    return tuple(out)


@dataclass
class StreamResult:
    """What :func:`denoise_to_file` did."""

    path: Path
    chunks_total: int
    chunks_computed: int
    chunks_resumed: int
    shape: tuple
    dtype: str
    #: the noise model solved with (a dict, or a list of dicts one per channel; None for a
    #: denoiser model); with ``estimate_noise=True``, the estimates
    noise_model: dict | list | None = None
    noise_estimate: list | None = None


def _model_digest(model: ScoreModel) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.network.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    h.update(json.dumps(model._header(), sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _source_id(source) -> dict:
    """What identifies the input for a resume: a file's path, size, time and a hash of bytes
    sampled at its start, middle and end; a folder (zarr) by a hash of every file's relative
    path, size and time (a chunk rewritten in place changes the folder's own stat in no way)
    and of its metadata files' content. An array cannot be identified cheaply, so a run from
    an array never resumes."""
    if not isinstance(source, (str, os.PathLike)):
        return {"array": type(source).__name__, "run": os.urandom(8).hex()}
    p = Path(source)
    h = hashlib.sha256()
    if p.is_dir():
        for root, dirs, names in os.walk(p):
            dirs.sort()
            for name in sorted(names):
                f = Path(root, name)
                st = f.stat()
                h.update(f"{f.relative_to(p)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
                if name in (".zarray", ".zattrs", ".zgroup", "zarr.json"):
                    h.update(f.read_bytes())
        return {"path": str(p.resolve()), "content": h.hexdigest()}
    st = p.stat()
    with open(p, "rb") as f:
        for at in sorted({0, max(0, st.st_size // 2 - 32768), max(0, st.st_size - 65536)}):
            f.seek(at)
            h.update(f.read(65536))
    return {"path": str(p.resolve()), "size": st.st_size, "mtime": st.st_mtime_ns,
            "sample": h.hexdigest()}


def cast_output(x: np.ndarray, dtype) -> np.ndarray:
    """``x`` as ``dtype``: integer types rounded and clipped to their range."""
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return np.clip(np.rint(x), info.min, info.max).astype(dt)
    return x.astype(dt, copy=False)


def _check_cancel(cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def denoise_to_file(source, output, model: ScoreModel, noise_model="gaussian", *,
                    axes: str | None = None, chunks=None,
                    format: str | None = None,  # noqa: A002 (the public keyword, as in numpy)
                    compression: str | None = None, tile_size: int | None = None,
                    dtype="float32", resume: bool = True, overwrite: bool = False,
                    device="auto", precision: str = "fp32", tile: int | None = None,
                    progress: ProgressFn | None = None, cancel=None,
                    metadata: dict | None = None, estimate_noise: bool = False,
                    units: str = "input", sigma_a="auto", tta: bool = False,
                    **params) -> StreamResult:
    """Denoise a stack chunk by chunk into a TIFF or zarr file, with bounded memory.

    Parameters
    ----------
    source : path or array_like
        TIFF file, zarr / OME-Zarr folder, or array (see :func:`open_image`).
    output : path
        ``.tif``/``.tiff`` (BigTIFF when large) or ``.zarr``; the format can also be forced.
    model, noise_model, **params
        As for :func:`scoredenoise.denoise`.
    axes, chunks
        As for :func:`open_image`. Spatial chunks are rounded to the network's pooling grid.
    format : {"tiff", "zarr"}, optional
        Default from the suffix of ``output``.
    compression : str, optional
        TIFF compression (e.g. ``"zlib"``, ``"zstd"``) or zarr codec name (``"zstd"``,
        ``"blosc"``, ``"gzip"``); default none.
    tile_size : int, optional
        Write a tiled TIFF with tiles of this size (a multiple of 16) instead of one strip
        block per page.
    dtype : "float32", "input" or a numpy dtype
        Output type; ``"input"`` keeps the input's (integers rounded and clipped).
    resume : bool
        Reuse the chunks finished by an interrupted run with the same input file, model, noise
        model and settings (``False`` starts over). Runs from in-memory arrays always start
        over (an array cannot be recognised cheaply).
    overwrite : bool
        Replace an existing output (otherwise an error).
    device, precision, tile
        As for :meth:`ScoreModel.score`.
    progress : callable(done, total), optional
        Called after each chunk.
    cancel : threading.Event or callable, optional
        Checked between chunks (and between the planes that ``estimate_noise`` measures);
        when set, the run stops with :class:`Cancelled` and leaves its finished chunks for a
        resume.
    metadata : dict, optional
        Extra metadata stored in the output.
    units : {"input", "signal"}
        As for :func:`scoredenoise.denoise`: the input's units (default) or the signal above
        the camera offset; recorded in the output's metadata.
    sigma_a : "auto" or float
        As for :func:`scoredenoise.denoise`: a sigma-conditioned score is evaluated at one
        sigma_a for the whole file, chosen on a sample of it (``"auto"``) and recorded in
        the output's metadata.
    tta : bool
        As for :func:`scoredenoise.denoise`: each chunk's network output averaged over the 8
        rotations and flips (8x the network's cost); recorded in the metadata.
    estimate_noise : bool
        Estimate the noise model's parameters from this source first
        (:func:`scoredenoise.estimate_noise`, one estimate per channel when the image has a C
        axis), keeping those given in ``**params`` fixed: each file of a batch gets its own.
        The estimates are stored in the output's metadata and in the result.

    Returns
    -------
    StreamResult

    Examples
    --------
    >>> model = scoredenoise.load_model("cells.sdmodel")                     # doctest: +SKIP
    >>> denoise_to_file("stack.tif", "out/stack_denoised.tif", model,
    ...                 "poisson-gaussian", gain=2.0, offset=100, read_noise=3)  # doctest: +SKIP
    >>> r = denoise_to_file("other.tif", "out/other_denoised.tif", model,
    ...                     "poisson-gaussian", estimate_noise=True)         # doctest: +SKIP
    >>> r.noise_model["params"]                                              # doctest: +SKIP
    """

    check_units(units, model.kind)

    output = Path(output)
    fmt = (format or ("zarr" if output.suffix.lower() == ".zarr" else "tiff")).lower()
    if fmt not in ("tiff", "zarr"):
        raise ValueError(f"format must be 'tiff' or 'zarr', got {format!r}")
    if isinstance(source, (str, os.PathLike)) and Path(source).resolve() == output.resolve():
        raise ValueError(f"refusing to overwrite the input {output}; choose another output")
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass overwrite=True (CLI: --overwrite) or "
                              f"choose another output")
    if output.is_dir() and not (fmt == "zarr" and _is_zarr_store(output)):
        what = " (not a zarr store)" if fmt == "zarr" else ""
        raise IsADirectoryError(f"{output} is a folder{what}; refusing to replace a folder: "
                                f"choose a file name for the output")
    if tile_size is not None and (tile_size < 16 or tile_size % 16):
        raise ValueError(f"tile_size must be a multiple of 16, got {tile_size}")
    img = open_image(source, axes=axes, chunks=chunks)
    axes = model.resolve_axes(img.axes, img.data.ndim)
    if fmt == "tiff" and axes[-2:] != "YX":
        raise ValueError(f"TIFF output needs Y and X as the last axes, got {axes!r}; write "
                         f"zarr (.zarr) or reorder the input")
    estimates = None
    if model.kind != "score":
        if estimate_noise:
            raise ValueError(f"estimate_noise: a {model.kind} model uses no noise model")
        nm = None
    elif estimate_noise:
        if isinstance(noise_model, (list, tuple)):
            raise ValueError("estimate_noise estimates one noise model (per channel where "
                             "the image has C); give one, not a list")
        est = estimate(img.data, noise_model, axes=axes,  # a list per channel
                       progress=lambda *_: not _check_cancel(cancel), **params)
        nm = resolve_noise_models(est)
        estimates = [e.to_dict() for e in (est if isinstance(est, list) else [est])]
    else:
        nm = resolve_noise_models(noise_model, **params)
    nm_dict = None if nm is None else [m.to_dict() for m in nm] if isinstance(nm, tuple) \
        else nm.to_dict()
    data = img.data
    sig = None
    if nm is not None and model.conditioned:  # one sigma_a for the whole file
        sig = model.resolve_sigma_a(data, sigma_a, nm, axes=axes, device=device,
                                    precision=precision,
                                    progress=lambda *_: not _check_cancel(cancel))
    plan = chunk_plan(data.shape, data.chunksize, model, nm, axes=axes, device=device,
                      precision=precision, tile=tile, units=units, sigma_a=sig, tta=tta)
    data = data.rechunk(plan.chunks)
    out_dtype = np.dtype(img.dtype if dtype == "input" else dtype)
    job = {"source": _source_id(source), "model": _model_digest(model),
           "noise_model": nm_dict, "sigma_a": sig,
           "exact_solve": any(getattr(m, "uses_exact", False)
                              for m in (nm if isinstance(nm, tuple) else (nm,))),
           "units": units,
           "axes": axes,
           "shape": list(data.shape), "chunks": [list(c) for c in data.chunks],
           "depth": [plan.depth[a] for a in range(data.ndim)],
           "dtype": out_dtype.str, "format_version": 1,
           **({"tta": True} if tta else {})}  # (absent when off: older jobs still resume)
    work = output.parent / f".{output.name}{PARTIAL}"
    store = _open_work(work, job, data, out_dtype, resume, compression if fmt == "zarr"
                       else None)
    done_dir = work / "done"
    blocks = list(np.ndindex(*data.numblocks))
    starts = [np.cumsum((0,) + c[:-1]) for c in data.chunks]
    resumed = sum((done_dir / _key(b)).exists() for b in blocks)
    computed = 0
    if progress is not None:
        progress(resumed, len(blocks))
    try:
        for b in blocks:
            marker = done_dir / _key(b)
            if marker.exists():
                continue
            if _check_cancel(cancel):
                raise Cancelled(f"cancelled after {resumed + computed} of {len(blocks)} "
                                f"chunks; run again to resume from {work}")
            core = tuple(slice(int(s[i]), int(s[i]) + int(c[i]))
                         for s, c, i in zip(starts, data.chunks, b))
            # the chunk with its halo, read straight from the source (only what it needs)
            grown = tuple(slice(max(0, c.start - plan.depth[a]),
                                min(n, c.stop + plan.depth[a]))
                          for a, (c, n) in enumerate(zip(core, data.shape)))
            y = np.asarray(img.data[grown].compute(scheduler="synchronous"))
            x = plan.block_fn(y)
            inner = tuple(slice(c.start - g.start, c.stop - g.start)
                          for c, g in zip(core, grown))
            _check_finite(x[inner], y[inner], core, source)
            store[core] = cast_output(x[inner], out_dtype)
            marker.touch()
            computed += 1
            if progress is not None:
                progress(resumed + computed, len(blocks))

        md = {"scoredenoise": {"source": job["source"].get("path", job["source"].get("array")),
                               "noise_model": job["noise_model"],
                               "exact_solve": job["exact_solve"], "model_kind": model.kind,
                               "units": units, "sigma_a": sig, "tta": bool(tta),
                               "model_digest": job["model"],
                               **({"noise_estimate": estimates} if estimates else {}),
                               **(metadata or {})}}
        if img.extra:
            md["source_metadata"] = img.extra
        if fmt == "zarr":
            store.attrs.update(json.loads(json.dumps(
                {"axes": axes, "pixel_size": img.pixel_size, "unit": img.unit, **md},
                default=str)))
            shutil.rmtree(done_dir)
            (work / "job.json").unlink()
            # an existing store (overwrite asked for) is moved aside, not deleted, until the new
            # one is in place: a failure in between loses neither
            old = work / "replaced" if output.exists() else None
            if old is not None:
                os.replace(output, old)
            try:
                os.replace(work / "data", output)
            except BaseException:
                if old is not None:
                    os.replace(old, output)
                raise
            shutil.rmtree(work)
        else:
            _zarr_to_tiff(store, output, axes=axes, pixel_size=img.pixel_size, unit=img.unit,
                          metadata=md, compression=compression, tile_size=tile_size)
            shutil.rmtree(work)
    except (ValueError, TypeError, ArithmeticError):
        # a failure that would recur (bad values, a result out of range): nothing to resume;
        # interruptions (Cancelled, KeyboardInterrupt) and I/O errors keep the finished chunks
        shutil.rmtree(work, ignore_errors=True)
        raise
    for stale in output.parent.glob(f".{glob.escape(output.name)}.*.tif"):
        stale.unlink(missing_ok=True)  # temporary files of killed earlier writes
    return StreamResult(output, len(blocks), computed, resumed, tuple(data.shape),
                        out_dtype.name, nm_dict, estimates)


def _is_zarr_store(path: Path) -> bool:
    return any((path / f).exists() for f in (".zarray", ".zgroup", "zarr.json"))


def _check_finite(x, y, core, source) -> None:
    """A result that is not finite where the input is (overflow from absurd parameters)
    fails the file instead of being written as a result."""
    bad = ~np.isfinite(x) & np.isfinite(y)
    if bad.any():
        where = ", ".join(f"{c.start}:{c.stop}" for c in core)
        raise FloatingPointError(
            f"{int(bad.sum())} pixels of the result are inf or NaN (chunk [{where}] of "
            f"{source}) where the input is finite: the noise model's parameters are out of "
            f"range for these data (check gain, sigma, read_noise); nothing was written")


def _key(b) -> str:
    return "_".join(map(str, b))


def _open_work(work: Path, job: dict, data, dtype, resume: bool, compression):
    import zarr

    job_file = work / "job.json"
    if work.exists():
        same = False
        with contextlib.suppress(OSError, ValueError):  # unreadable: not the same job
            same = json.loads(job_file.read_text()) == json.loads(json.dumps(job))
        if not (resume and same):
            shutil.rmtree(work)
    if not work.exists():
        (work / "done").mkdir(parents=True)
        # uncompressed unless asked: the working store of a TIFF output is temporary, and
        # compressing noisy float data costs time for little space
        shape, chunks = data.shape, tuple(int(max(c)) for c in data.chunks)
        codecs = _zarr_codec(compression) if compression else None
        if hasattr(zarr, "create_array"):  # zarr 3
            zarr.create_array(str(work / "data"), shape=shape, chunks=chunks, dtype=dtype,
                              compressors=codecs)
        else:  # zarr 2
            zarr.open_array(str(work / "data"), mode="w", shape=shape, chunks=chunks,
                            dtype=dtype, compressor=codecs[0] if codecs else None)
        job_file.write_text(json.dumps(job))
    return zarr.open_array(str(work / "data"), mode="r+")


def _zarr_codec(name: str) -> list:
    name = name.lower()
    try:  # zarr 3
        from zarr import codecs

        table = {"zstd": codecs.ZstdCodec, "blosc": codecs.BloscCodec,
                 "gzip": codecs.GzipCodec, "zlib": codecs.GzipCodec}
    except ImportError:  # zarr 2 (numcodecs)
        import numcodecs

        table = {"zstd": numcodecs.Zstd, "blosc": numcodecs.Blosc, "gzip": numcodecs.GZip,
                 "zlib": numcodecs.Zlib}
    if name not in table:
        raise ValueError(f"zarr compression must be 'zstd', 'blosc' or 'gzip', got {name!r}")
    return [table[name]()]


def _zarr_to_tiff(store, path: Path, *, axes, pixel_size, unit, metadata, compression,
                  tile_size):
    """Stream a zarr array into a TIFF page by page, atomically."""
    import tifffile

    shape = tuple(store.shape)
    yx = [axes.index("Y"), axes.index("X")]
    lead = [i for i in range(len(shape)) if i not in yx]
    if yx != [len(shape) - 2, len(shape) - 1]:
        raise ValueError(f"TIFF output needs Y and X as the last axes, got {axes!r}; write "
                         f"zarr (.zarr) or reorder the input")
    md = {"axes": axes, "pixel_size": pixel_size or {}}
    if unit:
        md["unit"] = unit
    md.update(metadata)
    md = json.loads(json.dumps(md, default=str))
    kwargs = {}
    if pixel_size and "X" in pixel_size and "Y" in pixel_size:
        kwargs["resolution"] = (1.0 / pixel_size["X"], 1.0 / pixel_size["Y"])
    if tile_size:
        kwargs["tile"] = (tile_size, tile_size)

    def pages():
        for idx in np.ndindex(*[shape[i] for i in lead]):
            page = np.asarray(store[idx])
            if not tile_size:
                yield page
                continue
            # a tiled TIFF is written from its tiles, row by row, padded at the edges
            t = tile_size
            for y0 in range(0, page.shape[0], t):
                for x0 in range(0, page.shape[1], t):
                    tile = np.zeros((t, t), page.dtype)
                    part = page[y0:y0 + t, x0:x0 + t]
                    tile[:part.shape[0], :part.shape[1]] = part
                    yield tile

    nbytes = int(np.prod(shape)) * np.dtype(store.dtype).itemsize
    with atomic_write(path, suffix=".tif") as tmp:
        tifffile.imwrite(tmp, pages(), shape=shape, dtype=store.dtype, metadata=md,
                         bigtiff=nbytes > 2 ** 31 - 2 ** 25, photometric="minisblack",
                         compression=compression, **kwargs)


# ---------------------------------------------------------------------------------------------
# many files, serially or on a dask.distributed cluster

_WORKER_MODELS: dict = {}


def _worker_denoise(blob: bytes, source, output, kwargs: dict) -> dict:
    """Runs on a dask worker: the model arrives once per worker (a scattered, broadcast
    buffer) and is kept loaded for the next files."""
    import time

    import torch

    key = hashlib.sha256(blob).hexdigest()
    if key not in _WORKER_MODELS:
        _WORKER_MODELS.clear()
        _WORKER_MODELS[key] = model_from_bytes(blob)
        try:  # one worker's threads, not the machine's: workers share the cores
            from distributed import get_worker

            torch.set_num_threads(max(1, int(get_worker().state.nthreads)))
        except (ImportError, ValueError, AttributeError):
            pass
    t0 = time.perf_counter()
    r = denoise_to_file(source, output, _WORKER_MODELS[key], **kwargs)
    return {"chunks": r.chunks_total, "computed": r.chunks_computed,
            "resumed": r.chunks_resumed, "seconds": time.perf_counter() - t0,
            "noise_model": r.noise_model, "noise_estimate": r.noise_estimate}


def denoise_files(jobs, model: ScoreModel, *, client=None, on_done=None, **kwargs) -> list:
    """Denoise many files, each streamed by :func:`denoise_to_file`.

    Parameters
    ----------
    jobs : list of (source, output)
    model : ScoreModel
    client : distributed.Client, optional
        Run the files in parallel on this cluster's workers (one file per task; the model is
        sent once to each worker). Default: one after the other in this process.
    on_done : callable(source, output, result_or_exception), optional
        Called as each file finishes (in completion order on a cluster).
    **kwargs
        Passed to :func:`denoise_to_file` (noise_model, params, chunks, dtype, ...).

    Returns
    -------
    list of dict
        Per file, in the order of ``jobs``: source, output, ok, error, chunks, seconds, and
        the noise model solved with (and its estimates with ``estimate_noise=True``).
    """
    import time

    outs = [Path(o).resolve() for _, o in jobs]
    twice = sorted({str(o) for o in outs if outs.count(o) > 1})
    if twice:
        raise ValueError(f"several inputs would write the same output: {', '.join(twice)}; "
                         f"give each input its own output")
    rows = [{"source": str(s), "output": str(o), "ok": False, "error": None}
            for s, o in jobs]
    if client is None:
        for row, (s, o) in zip(rows, jobs):
            t0 = time.perf_counter()
            try:
                r = denoise_to_file(s, o, model, **kwargs)
                row.update(ok=True, chunks=r.chunks_total, computed=r.chunks_computed,
                           resumed=r.chunks_resumed, seconds=time.perf_counter() - t0,
                           noise_model=r.noise_model, noise_estimate=r.noise_estimate)
                res = r
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 (one bad file must not stop the others)
                row["error"] = f"{type(exc).__name__}: {exc}"
                res = exc
            if on_done is not None:
                on_done(s, o, res)
        return rows
    from distributed import as_completed

    kwargs.pop("progress", None)  # per-chunk callbacks do not cross processes
    # hash=False: a unique key per call. Scattering the same bytes again would reuse the
    # content-hashed key of an earlier call's future while the scheduler is releasing it, and
    # the tasks then fail with "lost dependencies" (dask/distributed#8576).
    blob = client.scatter(model.to_bytes(), broadcast=True, hash=False)
    futures = {client.submit(_worker_denoise, blob, s, o, kwargs, pure=False): i
               for i, (s, o) in enumerate(jobs)}
    for fut in as_completed(futures):
        i = futures[fut]
        try:
            res = fut.result()
            rows[i].update(ok=True, **res)
        except Exception as exc:  # noqa: BLE001 (reported; the other files go on)
            res = exc
            rows[i]["error"] = f"{type(exc).__name__}: {exc}"
        if on_done is not None:
            on_done(jobs[i][0], jobs[i][1], res)
    return rows


def make_client(scheduler: str | None = None, workers: int | None = None):
    """A dask.distributed client: to ``scheduler`` (an address such as
    ``tcp://10.0.0.5:8786``, or a scheduler JSON file), or to a new local cluster of
    ``workers`` processes sharing this machine's cores. Needs ``pip install distributed``."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError("running on a cluster needs dask.distributed: "
                          "pip install 'scoredenoise[cluster]'") from None
    if scheduler:
        if Path(scheduler).is_file():
            return Client(scheduler_file=scheduler)
        return Client(scheduler)
    if workers is None or workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    threads = max(1, (os.cpu_count() or 1) // workers)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                           dashboard_address=None)
    return Client(cluster)
