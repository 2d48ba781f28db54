"""Reading and writing images: TIFF (ImageJ, OME, plain) and PNG, with axes and pixel sizes.

TIFF is read lazily when asked (``tifffile`` -> zarr store), so patches of a stack larger than
memory can be read without loading it. Writes are atomic: a temporary file in the target folder,
renamed at the end, so an interrupted run never leaves a partial file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _axes
from ._axes import default_axes

__all__ = ["ImageData", "read_image", "write_tiff", "write_png", "atomic_path",
           "publish", "atomic_write", "IMAGE_SUFFIXES", "find_images"]

IMAGE_SUFFIXES = (".tif", ".tiff", ".png")
# tifffile's axis letters -> ours (TCZYXS): S (samples per pixel) is a channel, unknown ones a
# batch of samples
_TIFF_AXES = {"T": "T", "C": "C", "Z": "Z", "Y": "Y", "X": "X", "S": "C"}


@dataclass
class ImageData:
    """An image with its axes and acquisition metadata."""

    data: object  # numpy array, or a lazy zarr array
    axes: str
    path: Path | None = None
    pixel_size: dict = field(default_factory=dict)  # axis letter -> size
    unit: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return np.dtype(self.data.dtype)


def _map_axes(tiff_axes: str) -> str:
    out = []
    spare = [a for a in "ST" if a not in tiff_axes]
    for a in tiff_axes:
        if a in _TIFF_AXES and _TIFF_AXES[a] not in out:
            out.append(_TIFF_AXES[a])
        elif spare:
            out.append(spare.pop(0))
        else:
            raise ValueError(f"cannot map the TIFF axes {tiff_axes!r} to TCZYXS; pass axes")
    return "".join(out)


def _plain_stack(tiff_axes: str) -> bool:
    """Whether tifffile's axes are those of planes stacked without axes metadata: pages (I),
    unknown (Q) or separate sample planes (S) before YX; interleaved colour (YXS) is not."""
    lead = tiff_axes[:-2]
    return tiff_axes.endswith("YX") and 1 <= len(lead) <= 3 and set(lead) <= set("IQS")


def read_image(path: str | os.PathLike, *, lazy: bool = False) -> ImageData:
    """Read a TIFF or PNG file with its axes and pixel sizes.

    Parameters
    ----------
    path : path
    lazy : bool
        For TIFF, return a zarr array backed by the file (read on slicing) instead of
        loading it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return _read_tiff(path, lazy)
    if suffix == ".png":
        from skimage.io import imread

        a = imread(path)
        if a.ndim == 3 and a.shape[-1] == 4:
            a = a[..., :3]
        axes = "YX" if a.ndim == 2 else "YXC"
        return ImageData(a, axes, path)
    raise ValueError(f"unsupported image type {path.suffix!r} ({path}); use TIFF or PNG")


def _read_tiff(path: Path, lazy: bool) -> ImageData:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes = _map_axes(series.axes)
        pixel, unit, extra = {}, None, {}
        page = tif.pages[0]
        ij = tif.imagej_metadata or {}
        if ij:
            unit = ij.get("unit")
            if "spacing" in ij:
                pixel["Z"] = float(ij["spacing"])
        for tag, ax in (("XResolution", "X"), ("YResolution", "Y")):
            t = page.tags.get(tag)
            if t is not None:
                num, den = t.value
                if num and den and (num, den) != (1, 1):
                    pixel[ax] = den / num
        shaped = tif.shaped_metadata
        if shaped:
            md = shaped[0]
            pixel.update(md.get("pixel_size", {}))
            unit = md.get("unit", unit)
            extra = {k: v for k, v in md.items() if k not in ("shape", "axes", "pixel_size",
                                                                "unit")}
            # our own outputs keep our letters: their S is a sample axis, not tifffile's
            # samples per pixel (a colour)
            own = md.get("axes")
            if "scoredenoise" in md and isinstance(own, str) and \
                    len(own) == len(series.shape) and set(own) <= set("TCZYXS"):
                axes = own
        if tif.is_ome:
            ome = tif.ome_metadata or ""
            for ax in "XYZ":
                key = f'PhysicalSize{ax}="'
                if key in ome:
                    pixel[ax] = float(ome.split(key, 1)[1].split('"', 1)[0])
        explicit = bool(ij) or tif.is_ome or bool(shaped and "axes" in shaped[0])
        if not explicit and _plain_stack(series.axes):
            # no axes recorded: a stack of planes, as for arrays (ZYX, TZYX); tifffile calls
            # 3-4 planes written without metadata "samples" (planar RGB), which is no colour
            axes = default_axes(len(series.axes))
        if lazy:
            import zarr

            data = zarr.open(series.aszarr(), mode="r")
            if hasattr(data, "keys") and not hasattr(data, "shape"):
                data = data["0"]
        else:
            data = series.asarray()
    return ImageData(data, axes, path, pixel, unit, extra)


def _umask() -> int:
    """The process's umask, read without changing it where the system tells it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(mask)
    return mask


def atomic_path(final: Path, suffix: str = ".part"):
    """A temporary path in the folder of ``final``; :func:`publish` renames it to ``final``
    when complete, with the permissions of the user's umask."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_write(final: Path, suffix: str = ".part"):
    """Write a file atomically: yields a temporary path in ``final``'s folder; when the
    block ends the file is renamed to ``final`` (with the permissions of the user's umask),
    and on any error it is removed, so ``final`` is never left half-written.

    Examples
    --------
    >>> with atomic_write(Path("out.tif")) as tmp:           # doctest: +SKIP
    ...     tifffile.imwrite(tmp, data)
    """
    tmp = atomic_path(final, suffix)
    try:
        yield tmp
        publish(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def publish(tmp: Path, final: Path) -> None:
    """Move a finished temporary file to its final name (atomic), with the permissions the
    user's umask gives (writers may have made it owner-only)."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, final)


def write_tiff(path: str | os.PathLike, data, *, axes: str,
               pixel_size: dict | None = None, unit: str | None = None,
               metadata: dict | None = None, compression: str | None = None,
               shape: tuple | None = None, dtype=None, tile_size: int | None = None) -> Path:
    """Write ``data`` to a TIFF atomically, with axes, pixel sizes and JSON metadata.

    Axes and metadata are stored as tifffile's JSON description (read back by
    :func:`read_image`); X/Y pixel sizes also as resolution tags that other software reads.
    ``data`` is an array, or an iterable of (Y, X) pages with ``shape`` and ``dtype`` given:
    then one page at a time is held in memory (streamed writing); with ``tile_size`` a tiled
    TIFF, whose iterable yields the tiles of each page row by row. The one TIFF writer of the
    package (results, streamed results, posterior maps).
    """
    import tifffile

    path = Path(path)
    pages = {}
    if shape is None:
        data = np.asarray(data)
        shape, dtype = data.shape, data.dtype
    elif dtype is None:
        raise ValueError("write_tiff: pages need their dtype (dtype=) as well as the shape")
    else:
        pages = {"shape": tuple(shape), "dtype": np.dtype(dtype)}
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    pixel_size = pixel_size or {}
    md = {"axes": axes, "pixel_size": pixel_size}
    if unit:
        md["unit"] = unit
    md.update(metadata or {})
    md = json.loads(json.dumps(md, default=str))
    kwargs = {}
    if "X" in pixel_size and "Y" in pixel_size:
        kwargs["resolution"] = (1.0 / pixel_size["X"], 1.0 / pixel_size["Y"])
    if tile_size:
        kwargs["tile"] = (tile_size, tile_size)
    # the temporary file ends in .tif: a killed write's leftover is found and removed by the
    # next write of the same output (to_file)
    with atomic_write(path, suffix=".tif") as tmp:
        tifffile.imwrite(tmp, data, metadata=md, **pages,
                         bigtiff=nbytes > 2 ** 31 - 2 ** 25, photometric="minisblack",
                         compression=compression, **kwargs)
    return path


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an 8-bit PNG atomically."""
    from skimage.io import imsave

    path = Path(path)
    with atomic_write(path, suffix=".png") as tmp:
        imsave(tmp, image, check_contrast=False)
    return path


def find_images(paths) -> list[Path]:
    """Expand files and folders (non-recursive) into a sorted list of images: TIFF and PNG
    files, and zarr / OME-Zarr folders (``*.zarr``)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir() and p.suffix.lower() == ".zarr":  # a zarr / OME-Zarr image
            out.append(p)
        elif p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES
                          or (f.is_dir() and f.suffix.lower() == ".zarr"))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{str(p)!r} is neither a file nor a folder")
    if not out:
        raise FileNotFoundError(f"no TIFF, PNG or zarr images found in "
                                f"{', '.join(map(str, paths))}")
    return out


# ---------------------------------------------------------------------------------------------
# opening lazily (stacks larger than memory)


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
