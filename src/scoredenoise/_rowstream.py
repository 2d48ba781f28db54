"""Row-streamed U-Net inference: the whole image in one pass, no tile halos, bounded memory.

A tiled pass recomputes a halo of the receptive field around every tile (1.5x the work for
512-pixel tiles with the default network), and one call on a large image is slow because its
activations do not fit in the CPU's caches. Here the image goes through the network in bands
of rows along the first spatial axis (rows in 2D, planes in 3D), as a line-buffered pipeline:
every layer keeps the few rows of its input that its next output rows still need (two for a
3x3 convolution, the odd row for a pooling) and each skip connection keeps the rows the decoder
has not reached yet. Nothing is computed twice, the activations of one band stay in cache, and
memory is bounded by the image's width times the receptive field, whatever its height.

The result equals the network's own forward pass (same operations on the same rows, up to
floating-point reassociation inside the convolution kernels).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .network import pad_to_multiple

#: default tile (pixels per spatial axis) of the tiled pass (GPU, 3-D networks)
TILE = 512
#: default strip width of the CPU's row-streamed pass (only wider 2-D images are cut)
STREAM_TILE = 4096

__all__ = ["stream_forward", "band_rows", "default_tile"]


def default_tile(streamed: bool) -> int:
    """The network's tile (``tile=None``): ``STREAM_TILE`` for the CPU's row-streamed 2-D
    pass, ``TILE`` for the tiled pass (GPU, 3-D networks). The one place this is chosen.

    Size knobs have one name each across the package: a *tile* is what one network pass
    sees (``tile=``), a *chunk* what one dask task or one file write holds (``chunks=``,
    ``--chunk``), ``tile_size`` a TIFF file's own tiling on disk, a *window* a region the
    noise measurement samples, a *pixel batch* the elements a solver evaluates at once."""
    return STREAM_TILE if streamed else TILE


def _rows(x: torch.Tensor, a: int, b: int) -> torch.Tensor:
    return x.narrow(2, a, b - a)


class _Rows:
    """Rows of one input that arrived in bands: kept as the bands themselves (never copied
    to append), read back as a view when the rows asked for lie in one band."""

    def __init__(self):
        self.pieces: list[torch.Tensor] = []
        self.start = 0  # row index of the first row kept
        self._buf = None  # reused for rows that span bands (fresh memory is slow to fill)

    def append(self, x: torch.Tensor) -> None:
        if x.shape[2]:
            self.pieces.append(x)

    @property
    def end(self) -> int:
        return self.start + sum(p.shape[2] for p in self.pieces)

    def get(self, lo: int, hi: int) -> torch.Tensor:
        parts, at = [], self.start
        for p in self.pieces:
            n = p.shape[2]
            a, b = max(lo, at), min(hi, at + n)
            if a < b:
                parts.append(_rows(p, a - at, b - at))
            at += n
        if len(parts) == 1:
            return parts[0]
        shape = list(parts[0].shape)
        shape[2] = hi - lo
        buf = self._buf
        if buf is None or buf.shape[2] < shape[2] or buf.dtype != parts[0].dtype \
                or list(buf.shape[:2]) + list(buf.shape[3:]) != shape[:2] + shape[3:]:
            fmt = torch.channels_last if parts[0].ndim == 4 and parts[0].is_contiguous(
                memory_format=torch.channels_last) else torch.contiguous_format
            buf = torch.empty(shape, dtype=parts[0].dtype, memory_format=fmt)
            self._buf = buf
        return torch.cat(parts, dim=2, out=_rows(buf, 0, shape[2]))

    def drop_before(self, row: int) -> None:
        while self.pieces and self.start + self.pieces[0].shape[2] <= row:
            self.start += self.pieces.pop(0).shape[2]
        if self.pieces and row > self.start:
            self.pieces[0] = _rows(self.pieces[0], row - self.start, self.pieces[0].shape[2])
            self.start = row


class _Conv:
    """A 3x3(x3) convolution with zero padding, optionally followed by ReLU, over rows that
    arrive in order; ``total`` rows in all. With several inputs (a skip connection) it is the
    convolution of their concatenation along channels, computed as a sum of convolutions, one
    per input, so that the concatenation is never copied."""

    def __init__(self, conv: nn.Module, relu: bool, total: int, split=None):
        w = conv.weight
        fmt = torch.channels_last if w.ndim == 4 and w.is_contiguous(
            memory_format=torch.channels_last) else torch.contiguous_format
        split = split or [w.shape[1]]
        self.weights = [p.contiguous(memory_format=fmt) for p in torch.split(w, split, dim=1)]
        self.bias, self.relu, self.total = conv.bias, relu, total
        nd = w.ndim - 2
        self._fn = F.conv2d if nd == 2 else F.conv3d
        self._rest = (1,) * (nd - 1)
        self.inputs = [_Rows() for _ in split]  # per input: the rows not yet consumed
        self.done = 0  # output rows produced

    def push(self, *xs: torch.Tensor) -> torch.Tensor:
        for rows, x in zip(self.inputs, xs):
            rows.append(x)
        end = min(r.end for r in self.inputs)  # input rows available: [0, end)
        stop = self.total if end >= self.total else end - 1  # output rows computable
        if stop <= self.done:
            return _empty_rows(xs[0], self.weights[0].shape[0])
        top, bottom = self.done == 0, stop == self.total
        lo, hi = max(self.done - 1, 0), min(stop + 1, self.total)
        # the image's edges: zero padding by the convolution itself; it adds one row at the
        # band's other end too, which is dropped (one row of extra work, at the edges only)
        pad = (1 if top or bottom else 0,) + self._rest
        y = None
        for rows, w in zip(self.inputs, self.weights):
            r = self._fn(rows.get(lo, hi), w, self.bias if y is None else None, padding=pad)
            y = r if y is None else y.add_(r)
        if top != bottom:
            y = _rows(y, 0, y.shape[2] - 1) if top else _rows(y, 1, y.shape[2])
        if self.relu:
            y = torch.relu_(y)
        keep = max(stop - 1, 0)  # the next output row, stop, needs input rows from stop - 1
        for rows in self.inputs:
            rows.drop_before(self.total if bottom else keep)
        self.done = stop
        return y


def _empty_rows(like: torch.Tensor, channels: int | None = None, scale: float = 1) -> torch.Tensor:
    shape = list(like.shape)
    if channels is not None:
        shape[1] = channels
    shape[2] = 0
    shape[3:] = [int(s * scale) for s in shape[3:]]
    return like.new_empty(shape)


class _Pool:
    """2x max pooling over rows that arrive in order (keeps an odd row for the next band)."""

    def __init__(self, fn):
        self.fn, self.input = fn, _Rows()

    def push(self, x: torch.Tensor) -> torch.Tensor:
        rows = self.input
        rows.append(x)
        lo = rows.start
        hi = lo + (rows.end - lo) // 2 * 2
        if hi == lo:
            return _empty_rows(x, scale=0.5)
        y = self.fn(rows.get(lo, hi), 2)
        rows.drop_before(hi)
        return y


def _convs(block: nn.Sequential, total: int, split=None) -> list[_Conv]:
    mods = list(block)
    out = []
    for i, m in enumerate(mods):
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            relu = i + 1 < len(mods) and isinstance(mods[i + 1], nn.ReLU)
            out.append(_Conv(m, relu, total, split if not out else None))
    return out


def band_rows(row_pixels: int, multiple: int, target_pixels: int = 1 << 16) -> int:
    """Rows per band when a row holds ``row_pixels`` pixels (the product of the other spatial
    sizes): about ``target_pixels`` pixels a band (enough work per call to hide the
    per-operation overhead, small enough to stay in cache), a multiple of the pooling grid."""
    rows = max(1, target_pixels // max(int(row_pixels), 1))
    return max(multiple, -(-rows // multiple) * multiple)


def stream_forward(net, x: torch.Tensor, *, rows: int | None = None,
                   progress=None, sigma=None) -> torch.Tensor:
    """``net(x, sigma)`` for a :class:`scoredenoise.network.UNet`, computed in bands of
    ``rows`` rows along the first spatial axis of ``x`` (``(N, C, *spatial)``; default
    :func:`band_rows`); ``progress(done, total)`` is called after each band with input rows.
    The caller picks the memory layout (channels-last on the CPU is fastest)."""
    cfg = net.config
    m = cfg.multiple
    spatial = x.shape[2:]
    mods = net.modulations(x, sigma)  # a modulated network's per-block scale and shift
    x = pad_to_multiple(net.with_sigma(x, sigma), m)  # as the network's forward pads
    total = x.shape[2]
    rows = rows or band_rows(math.prod(x.shape[3:]), m)
    depth = cfg.depth
    down = [_convs(b, total >> i) for i, b in enumerate(net.down)]
    pools = [_Pool(net._pool) for _ in range(depth)]
    # decoder level j joins the upsampled rows and the skip rows (w channels each)
    ups = []
    for j, b in enumerate(net.up):
        w = net.reduce[j].out_channels
        ups.append(_convs(b, total >> (depth - 1 - j), split=[w, w]))
    skips = [None] * depth
    out = None
    at = 0
    for a in range(0, total, rows):
        h = _rows(x, a, min(a + rows, total))
        for i in range(depth + 1):
            if i:
                h = pools[i - 1].push(h)
            for c in down[i]:
                h = c.push(h)
            if mods is not None:
                h = h * mods[i][0] + mods[i][1]
            if i < depth:
                skips[depth - 1 - i] = h
        for j in range(depth):
            if h.shape[2]:
                u = F.interpolate(net.reduce[j](h), scale_factor=2, mode="nearest")
            else:
                u = _empty_rows(h, net.reduce[j].out_channels, scale=2)
            convs = ups[j]
            h = convs[0].push(u, skips[j])
            for c in convs[1:]:
                h = c.push(h)
            if mods is not None:
                h = h * mods[depth + 1 + j][0] + mods[depth + 1 + j][1]
        if h.shape[2]:
            y = net.head(h)
            if out is None:
                out = y.new_empty((y.shape[0], y.shape[1], total) + tuple(y.shape[3:]))
            out.narrow(2, at, y.shape[2]).copy_(y)
            at += y.shape[2]
        if progress is not None:
            progress(min(a + rows, total), total)
    assert at == total, (at, total)
    return out[(slice(None), slice(None)) + tuple(slice(0, n) for n in spatial)]
