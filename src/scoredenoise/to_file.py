"""Denoise a stack larger than memory into a file: chunk by chunk, resumable, atomic.

The stack is opened lazily (:func:`scoredenoise.open_image`) and denoised chunk by chunk
(each chunk with a halo of the network's receptive field, at origins on its pooling grid, so
the result equals one whole-image pass), and written chunk by chunk:

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._chunked import chunk_plan
from ._progress import Cancelled, ProgressFn, cancel_requested, report, with_cancel
from .estimate import NoiseToEstimate
from .io import open_image, write_tiff
from .model import ScoreModel
from .smoothing import photon_map_of, score_factor
from .solve import check_units, resolve_noise_models

__all__ = ["denoise_to_file", "StreamResult", "cast_output"]


#: working folder suffix; a run with the same settings resumes from it
PARTIAL = ".partial.zarr"


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


def denoise_to_file(source, output, model: ScoreModel, noise_model="gaussian", *,
                    axes: str | None = None, chunks=None,
                    format: str | None = None,  # noqa: A002 (the public keyword, as in numpy)
                    compression: str | None = None, tile_size: int | None = None,
                    dtype="float32", resume: bool = True, overwrite: bool = False,
                    device="auto", precision: str = "fp32", tile: int | None = None,
                    progress: ProgressFn | None = None, cancel=None,
                    metadata: dict | None = None, estimate_noise: bool = False,
                    units: str = "input", sigma_a="auto", tta: bool | str = "auto",
                    **params) -> StreamResult:
    """Denoise a stack chunk by chunk into a TIFF or zarr file, with bounded memory.

    Parameters
    ----------
    source : path or array_like
        TIFF file, zarr / OME-Zarr folder, or array (see :func:`open_image`).
    output : path
        ``.tif``/``.tiff`` (BigTIFF when large) or ``.zarr``; the format can also be forced.
    model, noise_model, **params
        As for :func:`scoredenoise.denoise`; ``noise_model`` may also be a
        :class:`~scoredenoise.estimate.NoiseToEstimate` (as ``estimate_noise=True``).
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
        Called after each chunk; returning False stops the run as ``cancel`` does.
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
    tta : bool or "auto"
        As for :func:`scoredenoise.denoise`: each chunk's network output averaged over the 8
        rotations and flips (8x the network's cost; ``"auto"``, the default: the model's
        :attr:`~scoredenoise.ScoreModel.tta_default`); recorded, resolved, in the metadata.
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
    tta = model.resolve_tta(tta)
    progress = with_cancel(progress, cancel)  # one protocol from here on

    def stop_asked(*_):  # for the steps before the chunks, whose counts are not chunks
        return not cancel_requested(cancel)

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
    if estimate_noise:
        if isinstance(noise_model, (list, tuple)):
            raise ValueError("estimate_noise estimates one noise model (per channel where "
                             "the image has C); give one, not a list")
        noise_model, params = NoiseToEstimate(noise_model, params), {}
    if model.kind != "score":
        if isinstance(noise_model, NoiseToEstimate):
            raise ValueError(f"estimate_noise: a {model.kind} model uses no noise model")
        nm = None
    elif isinstance(noise_model, NoiseToEstimate):
        if params:
            raise ValueError(f"the parameters of a noise model to estimate are its known "
                             f"ones: give {', '.join(params)} in NoiseToEstimate(known=...)")
        est = noise_model.estimate(img.data, axes=axes,  # a list per channel
                                   progress=stop_asked)
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
                                    progress=stop_asked)
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
           **({"tta": True} if tta else {}),  # (absent when off: older jobs still resume)
           **({"score_factor": score_factor(sig)} if score_factor(sig) != 1.0 else {}),
           **({"photon_map": photon_map_of(sig).to_dict()} if photon_map_of(sig) else {})}
    work = output.parent / f".{output.name}{PARTIAL}"
    store = _open_work(work, job, data, out_dtype, resume, compression if fmt == "zarr"
                       else None)
    done_dir = work / "done"
    blocks = list(np.ndindex(*data.numblocks))
    starts = [np.cumsum((0,) + c[:-1]) for c in data.chunks]
    resumed = sum((done_dir / _key(b)).exists() for b in blocks)
    computed = 0

    def ask(done):  # the one check: progress (with cancel folded in) answers False to stop
        try:
            report(progress, done, len(blocks))
        except Cancelled:
            raise Cancelled(f"cancelled after {done} of {len(blocks)} chunks; run again to "
                            f"resume from {work}") from None

    try:
        ask(resumed)
        for b in blocks:
            marker = done_dir / _key(b)
            if marker.exists():
                continue
            if computed:  # asked after each chunk, before the next (the last completes)
                ask(resumed + computed)
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
        if computed and progress is not None:
            progress(resumed + computed, len(blocks))

        md = {"scoredenoise": {"source": job["source"].get("path", job["source"].get("array")),
                               "noise_model": job["noise_model"],
                               "exact_solve": job["exact_solve"], "model_kind": model.kind,
                               "units": units, "sigma_a": sig, "tta": bool(tta),
                               "score_factor": score_factor(sig),
                               "model_digest": job["model"],
                               **({"photon_map": job["photon_map"]}
                                  if "photon_map" in job else {}),
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
    """Stream a zarr array into a TIFF page by page (:func:`write_tiff`: atomically)."""
    shape = tuple(store.shape)
    yx = [axes.index("Y"), axes.index("X")]
    lead = [i for i in range(len(shape)) if i not in yx]
    if yx != [len(shape) - 2, len(shape) - 1]:
        raise ValueError(f"TIFF output needs Y and X as the last axes, got {axes!r}; write "
                         f"zarr (.zarr) or reorder the input")

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

    write_tiff(path, pages(), axes=axes, pixel_size=pixel_size, unit=unit, metadata=metadata,
               compression=compression, shape=shape, dtype=store.dtype, tile_size=tile_size)
