"""Open TIFF and zarr / OME-Zarr stacks lazily: chunks are read when napari shows them."""

from __future__ import annotations

from pathlib import Path

SUFFIXES = (".tif", ".tiff", ".zarr")


def get_reader(path):
    """npe2 reader hook: a reader for one TIFF file or zarr folder, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if p.suffix.lower() not in SUFFIXES:
        return None
    return read_lazy


def read_lazy(path):
    """Layer data for napari: the image as a dask array, with scale and axes from the file."""
    # deferred: torch loads when a file is read, not when napari asks which files we read
    import scoredenoise as sd

    if isinstance(path, list):
        path = path[0]
    img = sd.open_image(path)
    scale = [float(img.pixel_size.get(a, 1.0)) for a in img.axes]
    md = {"axes": img.axes, "pixel_size": img.pixel_size, "unit": img.unit,
          "source_path": str(path), **({"file_metadata": img.extra} if img.extra else {})}
    kwargs = {"name": Path(path).name.split(".")[0], "metadata": md}
    labels = list(img.axes)
    # the file's physical unit on its spatial axes (napari showed -3 / -2 / -1 in pixels)
    unit = _known_unit(img.unit)
    units = [unit if a in "ZYX" else "pixel" for a in img.axes]
    if "C" in img.axes:
        c = img.axes.index("C")
        kwargs["channel_axis"] = c
        scale, labels, units = (v[:c] + v[c + 1:] for v in (scale, labels, units))
    kwargs.update(scale=scale, axis_labels=labels, units=units)
    return [(img.data, kwargs, "image")]


def _known_unit(unit) -> str:
    """The file's unit where napari's unit registry (pint) knows it, else "pixel" (an
    unknown one would fail the whole layer)."""
    import pint

    if not unit:
        return "pixel"
    try:
        pint.get_application_registry().parse_units(str(unit))
    except (pint.errors.UndefinedUnitError, ValueError, TypeError, AttributeError):
        return "pixel"
    return str(unit)
