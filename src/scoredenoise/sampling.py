"""Random training patches from images and stacks of any size (read lazily), with a held-out
validation band, augmentation, and the measurements of the data that set the training's
defaults (lattice step, camera, normalisation)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _axes
from ._measure import _measured_planes, _planes
from .estimate import estimate_noise

__all__ = ["PatchSampler"]

#: planes of a stack that the camera measurements read (estimate_noise's default)
_PLANES = 32


def _read(arr, idx) -> np.ndarray:
    block = arr[idx]
    if hasattr(block, "compute"):
        block = block.compute()
    return np.asarray(block)


@dataclass
class _Source:
    array: object
    axes: str
    perm: list
    samples: list
    channel: int | None
    spatial: list
    target: object = None


class PatchSampler:
    """Random patches (with optional aligned targets) from lazily read images.

    Parameters
    ----------
    images : array or sequence of arrays
        Numpy, dask, zarr or any array-like with ``shape``, ``dtype`` and slicing.
    axes : str or sequence of str, optional
        Axes of each image (letters TCZYXS); inferred from ``ndim`` when omitted.
    dims : {2, 3}
        Network dimensionality: 2D patches (YX) or 3D patches (ZYX).
    patch_size : int or tuple
        Spatial patch size.
    targets : sequence of arrays, optional
        Arrays aligned with ``images`` (clean images, or second noisy frames).
    val_fraction : float
        Fraction of each image's Y extent kept for validation (the last rows; at least one
        patch height, so that a small fraction works on small images too).
    augment : bool
        Random flips and 90-degree rotations (in YX).
    """

    def __init__(self, images, *, axes=None, dims: int = 2, patch_size=64, targets=None,
                 val_fraction: float = 0.0, augment: bool = True, rng=None):
        images = [images] if hasattr(images, "shape") else list(images)
        if not images:
            raise ValueError("no training images given")
        self._counts: dict = {}  # image, pixels -> its photon-count estimate (or None)
        if isinstance(axes, str) or axes is None:
            axes = [axes] * len(images)
        if len(axes) != len(images):
            raise ValueError(f"got {len(axes)} axes strings for {len(images)} images")
        if targets is not None:
            targets = [targets] if hasattr(targets, "shape") else list(targets)
            if len(targets) != len(images):
                raise ValueError(f"got {len(targets)} targets for {len(images)} images")
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.dims = dims
        ps = (patch_size,) * dims if np.isscalar(patch_size) else tuple(patch_size)
        if len(ps) != dims:
            raise ValueError(f"patch_size needs {dims} values for a {dims}D network, got {ps}")
        self.patch = tuple(int(p) for p in ps)
        self.augment = augment
        self.val_fraction = val_fraction
        self.rng = np.random.default_rng(rng)
        self.sources: list[_Source] = []
        channels = set()
        for i, img in enumerate(images):
            ax = _axes.check_axes(axes[i], len(img.shape), dims)
            perm, samples, ch, sp = _axes.canonical_order(ax, dims)
            tgt = targets[i] if targets is not None else None
            if tgt is not None and tuple(tgt.shape) != tuple(img.shape):
                raise ValueError(f"target {i} has shape {tuple(tgt.shape)} but image {i} has "
                                 f"{tuple(img.shape)}")
            sizes = [img.shape[a] for a in sp]
            train_y = self._train_rows(sizes[-2])
            need = list(self.patch)
            have = sizes[:-2] + [train_y] + sizes[-1:]
            if any(h < n for h, n in zip(have, need)):
                raise ValueError(
                    f"image {i} ({dict(zip(ax, img.shape))}) is smaller than the patch size "
                    f"{self.patch} (after keeping {sizes[-2] - train_y} rows for validation); "
                    f"use a smaller patch_size")
            channels.add(img.shape[ch] if ch is not None else 1)
            self.sources.append(_Source(img, ax, perm, samples, ch, sp, tgt))
        if len(channels) != 1:
            raise ValueError(f"all images must have the same number of channels, got "
                             f"{sorted(channels)}")
        self.channels = channels.pop()
        # sample images in proportion to their number of pixels
        n_pix = np.array([float(np.prod(s.array.shape)) for s in self.sources])
        self._weights = n_pix / n_pix.sum()
        self.bytes_read = 0

    def _train_rows(self, n_y: int) -> int:
        """Rows of an image of ``n_y`` rows left for training: the last ``val_fraction`` of
        them, but at least one patch height, are kept for validation (on the bundled
        256-row sample a fraction below 0.25 left fewer rows than a 64-pixel patch)."""
        if not self.val_fraction:
            return n_y
        return n_y - max(int(round(n_y * self.val_fraction)), self.patch[-2])

    def _index(self, src: _Source, rng, split: str):
        idx = [0] * len(src.array.shape)
        for a in src.samples:
            idx[a] = int(rng.integers(src.array.shape[a]))
        if src.channel is not None:
            idx[src.channel] = slice(None)
        for k, a in enumerate(src.spatial):
            n = src.array.shape[a]
            lo, hi = 0, n
            if k == len(src.spatial) - 2:  # Y: split train / validation
                split_at = self._train_rows(n)
                lo, hi = (0, split_at) if split == "train" else (split_at, n)
            start = int(rng.integers(lo, hi - self.patch[k] + 1))
            idx[a] = slice(start, start + self.patch[k])
        return tuple(idx)

    def _canonical(self, block: np.ndarray, src: _Source) -> np.ndarray:
        # remaining axes after integer indexing, in original order
        kept = [i for i in range(len(src.array.shape)) if i not in src.samples]
        order = ([kept.index(src.channel)] if src.channel is not None else []) + \
            [kept.index(a) for a in src.spatial]
        out = np.transpose(block, order)
        return out if src.channel is not None else out[None]

    def draw(self, batch: int, *, split: str = "train", rng=None):
        """A batch ``(inputs, targets)`` of shape (B, C, *patch), float32 in data units."""
        rng = self.rng if rng is None else rng
        xs, ts = [], []
        for _ in range(batch):
            src = self.sources[int(rng.choice(len(self.sources), p=self._weights))]
            idx = self._index(src, rng, split)
            a = self._canonical(_read(src.array, idx), src).astype(np.float32)
            self.bytes_read += a.nbytes
            t = None
            if src.target is not None:
                t = self._canonical(_read(src.target, idx), src).astype(np.float32)
            if self.augment and split == "train":
                a, t = self._augment(a, t, rng)
            xs.append(a)
            ts.append(t)
        x = np.stack(xs)
        return x, (np.stack(ts) if ts[0] is not None else None)

    def _augment(self, a, t, rng):
        nd = self.dims
        for ax in range(1, nd + 1):
            if rng.random() < 0.5:
                a = np.flip(a, ax)
                t = np.flip(t, ax) if t is not None else None
        if self.patch[-1] == self.patch[-2]:
            k = int(rng.integers(4))
            a = np.rot90(a, k, axes=(nd - 1, nd))
            t = np.rot90(t, k, axes=(nd - 1, nd)) if t is not None else None
        return np.ascontiguousarray(a), (np.ascontiguousarray(t) if t is not None else None)

    def quantisation_step(self, n_patches: int = 32, rng=None) -> float:
        """The grid step of the data values (1 for integer data), or 0 if they are continuous.

        Values on a lattice (integer ADU, or Poisson counts / lam) have no smooth density, so
        their score is not defined at small sigma_a; see ``extra_noise="auto"``.
        """
        rng = np.random.default_rng(1) if rng is None else rng
        x, _ = self.draw(n_patches, rng=rng)
        u = np.unique(x)
        if u.size < 2:
            return 0.0
        step = float(np.min(np.diff(u)))
        if step <= 0 or (u[-1] - u[0]) / step > 65536:
            return 0.0  # continuous data (or a lattice too fine to matter)
        k = (u - u[0]) / step
        return step if np.allclose(k, np.rint(k), atol=1e-3) else 0.0

    def _count_estimate(self, i: int, max_pixels: int):
        """(gain, read noise, photo-electrons a pixel) of image ``i`` by
        :func:`scoredenoise.estimate_noise`, or None where it is not photon counts; cached."""
        cache = self._counts
        if (i, max_pixels) not in cache:
            src = self.sources[i]
            try:
                nm = estimate_noise(src.array, axes=src.axes, max_planes=_PLANES,
                                    max_pixels=max_pixels).noise_model
            except ValueError:  # not Poisson-Gaussian, or too flat to measure
                cache[i, max_pixels] = None
            else:
                # the mean over the windows the estimate measured (read again: small)
                _, yx, lead, n = _planes(src.array, src.axes)
                wins = list(_measured_planes(src.array, yx, lead, n, _PLANES, max_pixels))
                mean = sum(float(w.sum()) for w in wins) / sum(w.size for w in wins)
                cache[i, max_pixels] = (nm.gain, nm.read_noise,
                                        max(mean - nm.offset, 0.0) / nm.gain)
        return cache[i, max_pixels]

    def _count_estimates(self, max_images: int, max_pixels: int) -> list:
        picks = np.unique(np.linspace(0, len(self.sources) - 1, max_images).round().astype(int))
        return [e for i in picks if (e := self._count_estimate(int(i), max_pixels)) is not None]

    def camera(self, max_images: int = 2,
               max_pixels: int = 2 ** 16) -> tuple[float, float] | None:
        """The photon step (gain) and read noise of Poisson-Gaussian data: the medians of
        :func:`scoredenoise.estimate_noise` over up to ``max_images`` of the images (evenly
        spaced; each measured on at most ``max_pixels``, so a lazy stack is barely read),
        or None where the data are not photon counts (the variance does not grow with the
        mean, or no fit)."""
        est = self._count_estimates(max_images, max_pixels)
        if not est:
            return None
        return float(np.median([e[0] for e in est])), float(np.median([e[1] for e in est]))

    def photons_per_pixel(self, max_images: int = 5,
                          max_pixels: int = 2 ** 16) -> float | None:
        """The median over up to ``max_images`` images (evenly spaced) of their mean signal
        in photo-electrons a pixel ((mean - offset) / gain, from
        :func:`scoredenoise.estimate_noise`; independent of the data's units), or None
        where the data are not photon counts. The offset is not identifiable from the noise:
        the estimate takes the darkest level, so a flat image or a uniform background counts
        only the photons above it (fewer: ``conditioned="auto"`` then errs towards the
        conditioned network, the safer one for dim data)."""
        est = self._count_estimates(max_images, max_pixels)
        return float(np.median([e[2] for e in est])) if est else None

    def normalisation(self, n_patches: int = 64, rng=None) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (offset, scale) from the 0.1 and 99.9 percentiles of random patches."""
        rng = np.random.default_rng(0) if rng is None else rng
        x, _ = self.draw(n_patches, rng=rng)
        flat = np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)
        lo = np.percentile(flat, 0.1, axis=1)
        hi = np.percentile(flat, 99.9, axis=1)
        scale = np.where(hi - lo > 0, hi - lo, 1.0)
        return lo, scale
