"""Each image in its own photo-electrons: the map of a model trained with ``units="photons"``.

Cameras and the files they end up in disagree on what one photo-electron is: W2S's widefield
frames were stretched one by one to 8 bits, so a photo-electron is 3.7 ADU in some and 44 ADU
in others. A network trained on all of them at one normalisation must tell from texture which
comb of counts a patch belongs to. Mapping each image by its own noise estimate,

    u = (y - offset) / gain        (photo-electrons),

puts every image on one lattice of counts with one noise law (Poisson, plus read noise / gain),
so the network learns one density. A model trained so (``train(..., units="photons")``)
records it; at inference each image is mapped by its own estimate (:meth:`ScoreModel.bind`),
which depends on the image alone, never on the noise model it is then solved with: switching
the noise model or its parameters still needs no retraining.

Measured (docs/benchmarks.md, "Units per image"): +0.66 dB on W2S over three seeds, where the
images' gains differ 12-fold; -0.30 dB on the five FMD pairs (their four specimens of gain
3.8-5.2 ADU/e- lose, the zebrafish of gain 22 gains 0.8 dB); FMD confocal (one gain) within
the seed spread. Hence not the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .estimate import estimate_noise

__all__ = ["PhotonMap", "UNITS", "estimate_photon_map", "to_photons"]

#: the training units a score model can have: the data's own, or each image in its own
#: photo-electrons
UNITS = ("data", "photons")


@dataclass(frozen=True)
class PhotonMap:
    """Offset and gain (data units per photo-electron) of an image, one each per channel:
    data = gain * photo-electrons + offset.

    Examples
    --------
    >>> from scoredenoise import PhotonMap
    >>> m = PhotonMap(offset=(100.0,), gain=(2.5,))
    >>> m.gain_of(0)
    2.5
    """

    offset: tuple
    gain: tuple

    def __post_init__(self):
        off = tuple(float(v) for v in np.atleast_1d(self.offset))
        gain = tuple(float(v) for v in np.atleast_1d(self.gain))
        if len(off) != len(gain) or not off:
            raise ValueError(f"a photon map needs one offset and one gain per channel, got "
                             f"{len(off)} offset(s) and {len(gain)} gain(s)")
        if not all(math.isfinite(v) for v in off):
            raise ValueError(f"offset must be finite, got {off}")
        if not all(math.isfinite(g) and g > 0 for g in gain):
            raise ValueError(f"gain must be > 0 (data units per photo-electron), got {gain}")
        object.__setattr__(self, "offset", off)
        object.__setattr__(self, "gain", gain)

    @property
    def channels(self) -> int:
        return len(self.gain)

    def gain_of(self, channel: int) -> float:
        return self.gain[min(channel, len(self.gain) - 1)]

    def to_dict(self) -> dict:
        return {"offset": list(self.offset), "gain": list(self.gain)}


def estimate_photon_map(image, *, axes: str, progress=None) -> PhotonMap:
    """The :class:`PhotonMap` of ``image`` (numpy, dask or zarr; ``axes`` checked) by its own
    Poisson-Gaussian estimate (:func:`scoredenoise.estimate_noise`, a sample of at most its
    default planes and pixels), one per channel where ``axes`` has C.

    Raises ValueError where the image shows no photon noise (an estimated gain of 0: data
    that are not photon counts, or already denoised), naming the fix."""
    try:
        return _estimate(image, axes, progress)[0]
    except ValueError as exc:
        raise ValueError(f"the image's photon map (its offset and gain, from its own noise "
                         f"estimate: the model learned each image in its own "
                         f"photo-electrons) cannot be estimated: {exc}; give one "
                         f"(model.bind(image, photon_map=...), or a sigma_a that carries "
                         f"it)") from None


def _estimate(image, axes: str, progress=None) -> tuple[PhotonMap, tuple]:
    """(:class:`PhotonMap`, read noise in photo-electrons per channel) of ``image``."""
    est = estimate_noise(image, "poisson-gaussian", axes=axes, progress=progress)
    est = est if isinstance(est, list) else [est]
    offset = [float(e.noise_model.offset) for e in est]
    gain = [float(e.noise_model.gain) for e in est]
    if not all(math.isfinite(g) and g > 0 for g in gain):
        raise ValueError(f"the image's estimated gain is {gain} (data units per "
                         f"photo-electron): it shows no photon noise, so it has no photon "
                         f"units; use a model trained with units='data'")
    read = tuple(float(e.noise_model.read_noise) / g for e, g in zip(est, gain))
    return PhotonMap(offset=tuple(offset), gain=tuple(gain)), read


def to_photons(image, pmap: PhotonMap, *, axes: str):
    """``image`` in photo-electrons, (image - offset) / gain per channel, as float32 (lazy for a
    dask array; a new array, the input is not changed)."""
    shape = [1] * len(axes)
    if "C" in axes:
        shape[axes.index("C")] = pmap.channels
    elif pmap.channels != 1:
        raise ValueError(f"a photon map of {pmap.channels} channels for an image without a C "
                         f"axis (axes {axes!r})")
    off = np.asarray(pmap.offset, np.float32).reshape(shape)
    gain = np.asarray(pmap.gain, np.float32).reshape(shape)
    if not isinstance(image, np.ndarray):  # dask, zarr: lazily
        import dask.array as da
        return ((da.asarray(image).astype(np.float32) - off) / gain).astype(np.float32)
    return ((np.asarray(image, dtype=np.float32) - off) / gain).astype(np.float32)


def check_training_units(units: str) -> str:
    """``units`` if it is ``"auto"`` or one of :data:`UNITS`, else a ValueError naming them."""
    if units != "auto" and units not in UNITS:
        raise ValueError(f"units must be 'auto', 'data' or 'photons', got {units!r}")
    return units
