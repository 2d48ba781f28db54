"""Parameter metadata of the noise models (unit, range, default, description), which
drives validation, ``to_dict``/``from_dict``, the CLI listing and the napari widgets; and
the plain result of a model's own noise-level fit."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class NoiseFit:
    """What a model's own ``fit_noise_level`` gives (models whose parameters are not all
    identifiable from the variances, e.g. ``poisson-gaussian``'s offset and read noise):
    :func:`scoredenoise.fit_noise_level` turns it into a ``NoiseEstimate`` with the
    measurement it was fitted to."""

    noise_model: Any
    stderr: dict
    estimated: tuple
    chi2: float
    derived: dict = dataclasses.field(default_factory=dict)
    notes: list = dataclasses.field(default_factory=list)

@dataclass(frozen=True)
class Param:
    """Description of one noise-model parameter.

    Attributes
    ----------
    name : str
        Field name, as used in ``--param name=value`` and ``to_dict``.
    default : Any
        Default value (in the data's own units).
    unit : str
        Unit, in words: ``"data units"`` (same as the image, e.g. ADU), ``"1/data units"``,
        ``"dimensionless"``, or ``"kernel"`` for the correlation kernel.
    low, high : float or None
        Admissible range; ``low_open``/``high_open`` say whether the bound itself is excluded.
    description : str
        One line for users.
    kind : str
        ``"float"`` or ``"kernel"`` (a small odd-sized convolution kernel, nested lists).
    """

    name: str
    default: Any
    unit: str
    description: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    kind: str = "float"

    def range_text(self) -> str:
        """Human-readable admissible range, e.g. ``"> 0"`` or ``"(1, inf)"``."""
        if self.kind == "kernel":
            return "odd-sized kernel with non-vanishing Fourier transform"
        parts = []
        if self.low is not None:
            parts.append(("> " if self.low_open else ">= ") + _fmt(self.low))
        if self.high is not None:
            parts.append(("< " if self.high_open else "<= ") + _fmt(self.high))
        return " and ".join(parts) if parts else "any real"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["range"] = self.range_text()
        return d

def _fmt(v: float) -> str:
    return f"{v:g}"

def param(default, *, unit: str, description: str, low=None, high=None, low_open=False,
          high_open=False, kind: str = "float"):
    """Declare a noise-model parameter as a dataclass field with its metadata."""
    meta = dict(unit=unit, description=description, low=low, high=high, low_open=low_open,
                high_open=high_open, kind=kind)
    return dataclasses.field(default=default, metadata={"param": meta})
