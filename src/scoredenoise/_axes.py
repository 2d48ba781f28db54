"""Axes of microscopy arrays: parse, infer, and move to the canonical (S, C, *spatial) layout.

Axis letters: ``T`` (time), ``C`` (channel), ``Z``, ``Y``, ``X``, ``S`` (sample / other). A 2D
network treats every axis other than C, Y, X as a batch of planes; a 3D network needs Z.
"""

from __future__ import annotations

import numpy as np

VALID = set("TCZYXS")


#: the axes assumed for an array of each number of dimensions when none are given: the
#: convention of TIFF and OME files (tifffile's ZYX, TZYX, TCZYX). The one rule the API, the
#: file reader, the CLI and the napari plugin share
DEFAULT_AXES = {2: "YX", 3: "ZYX", 4: "TZYX", 5: "TCZYX"}


def default_axes(ndim: int, dims: int = 2) -> str:
    """The axes assumed for an array of ``ndim`` dimensions when none are given.

    ``YX``, ``ZYX``, ``TZYX``, ``TCZYX`` (``DEFAULT_AXES``): the convention of TIFF and OME
    files. It suits both networks: a 3D network needs the Z, and a 2D network denoises every
    axis other than C, Y, X plane by plane, so a stack of frames read as Z gives the same
    result as read as samples (S) or time (T). Give ``axes`` where the array is otherwise
    (a C axis changes what the model is: one input per channel). The napari plugin proposes
    these unless a layer's metadata (the plugin's reader, its sample) records its axes.

    Examples
    --------
    >>> scoredenoise.default_axes(3)
    'ZYX'
    >>> scoredenoise.default_axes(4, dims=3)
    'TZYX'
    """
    if ndim not in DEFAULT_AXES:
        raise ValueError(f"cannot infer the axes of a {ndim}-D array; pass axes, e.g. 'TCZYX'")
    if ndim < dims:
        raise ValueError(f"a {dims}D network needs at least {dims} dimensions, got {ndim}; "
                         f"use a 2D network for 2D images")
    return DEFAULT_AXES[ndim]


def infer_axes(ndim: int) -> str:
    """:func:`default_axes` (the older name, kept)."""
    return default_axes(ndim)


def check_axes(axes: str | None, ndim: int, dims: int = 2) -> str:
    """Validate ``axes`` (letters from TCZYXS) for an array of ``ndim`` dimensions and a
    ``dims``-D network; returns them upper-cased, or the inferred ones for None. A bad string
    is refused with the reason, never replaced by a guess.

    Examples
    --------
    >>> scoredenoise.check_axes("tyx", 3)
    'TYX'
    """
    axes = default_axes(ndim) if axes is None else axes.upper()
    if len(axes) != ndim:
        raise ValueError(f"axes {axes!r} has {len(axes)} letters but the image has {ndim} "
                         f"dimensions; give one letter per dimension from TCZYXS")
    bad = set(axes) - VALID
    if bad or len(set(axes)) != len(axes):
        raise ValueError(f"axes {axes!r} must use each of the letters T, C, Z, Y, X, S at most "
                         f"once")
    need = "ZYX" if dims == 3 else "YX"
    missing = [a for a in need if a not in axes]
    if missing:
        raise ValueError(f"a {dims}D network needs axes {need}, but axes {axes!r} lack "
                         f"{''.join(missing)}; use a 2D network for 2D images or stacks of planes")
    return axes


def spatial_axes(dims: int) -> str:
    return "ZYX" if dims == 3 else "YX"


def canonical_order(axes: str, dims: int) -> tuple[list[int], list[int], int | None, list[int]]:
    """Return (permutation, sample axis positions, channel position, spatial positions)."""
    sp = [axes.index(a) for a in spatial_axes(dims)]
    ch = axes.index("C") if "C" in axes else None
    samples = [i for i, a in enumerate(axes) if i not in sp and i != ch]
    perm = samples + ([ch] if ch is not None else []) + sp
    return perm, samples, ch, sp


def to_canonical(a: np.ndarray, axes: str, dims: int) -> tuple[np.ndarray, dict]:
    """Reshape ``a`` to (S, C, *spatial); return it and what :func:`from_canonical` needs."""
    perm, samples, ch, sp = canonical_order(axes, dims)
    t = np.transpose(a, perm)
    sample_shape = t.shape[:len(samples)]
    n_s = int(np.prod(sample_shape)) if samples else 1
    n_c = a.shape[ch] if ch is not None else 1
    out = t.reshape((n_s, n_c) + t.shape[len(samples) + (ch is not None):])
    return out, {"perm": perm, "shape": t.shape}


def from_canonical(c: np.ndarray, info: dict) -> np.ndarray:
    t = c.reshape(info["shape"])
    return np.transpose(t, np.argsort(info["perm"]))
