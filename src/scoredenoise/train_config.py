"""How a model is trained, written once: :class:`TrainConfig`.

:func:`scoredenoise.train` takes it (or its fields as keywords), the CLI's ``train`` command
and the napari widget build one, and a model file records it (``model.meta["training"]``,
read back by :attr:`ScoreModel.train_config`), so a model can be trained again the same way.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from .network import PRESETS
from .objectives import get_objective
from .units import check_training_units

__all__ = ["TrainConfig", "TRAIN_STEPS", "PRESET_STEPS"]

#: default training steps: about 4 minutes for the default preset on 2 CPU cores, where the
#: score model has reached its plateau on the real benchmark sets (docs/benchmarks.md)
TRAIN_STEPS = 1000

#: default steps by network preset (``steps=None``): about the same time for "small" as for
#: "default" (a small step costs 0.2-0.23 of a default one on the project's CPUs)
PRESET_STEPS = {"small": 4 * TRAIN_STEPS, "default": TRAIN_STEPS, "large": TRAIN_STEPS}


def _h(text: str) -> dict:
    return {"help": text}


@dataclass(frozen=True)
class TrainConfig:
    """The settings of a training run (everything but the data, the device and the files).

    Each field is a keyword of :func:`scoredenoise.train`, which documents it; ``None``
    means "the default for the data and the objective", resolved when training starts and
    recorded resolved in the model file.

    Examples
    --------
    >>> cfg = scoredenoise.TrainConfig(preset="small", steps=2000, seed=0)
    >>> cfg.replace(steps=500).steps
    500
    >>> model = scoredenoise.train(noisy, config=cfg)              # doctest: +SKIP
    >>> again = scoredenoise.train(more, config=model.train_config)  # doctest: +SKIP
    """

    objective: str = field(default="score", metadata=_h("training objective"))
    dims: int = field(default=2, metadata=_h("2D (planes) or 3D (volumes) network"))
    preset: str | None = field(default=None, metadata=_h(
        "network size (default: 'small' for a sigma-conditioned score network, i.e. "
        "photon-starved data, else 'default')"))
    steps: int | None = field(default=None, metadata=_h(
        "training steps (default by preset: 4000 small, 1000 default and large)"))
    patch_size: int | tuple | None = field(default=None, metadata=_h(
        "patch side (default 64 in 2D, 32 in 3D)"))
    batch_size: int | None = field(default=None, metadata=_h(
        "patches per step (default 8 in 2D, 4 in 3D)"))
    lr: float | None = field(default=None, metadata=_h(
        "learning rate (default: the objective's)"))
    weight_decay: float = field(default=1e-4, metadata=_h("AdamW weight decay"))
    val_fraction: float = field(default=0.0, metadata=_h(
        "fraction of rows held out for a validation loss"))
    val_every: int | None = field(default=None, metadata=_h(
        "steps between validation losses (default steps / 20)"))
    augment: bool = field(default=True, metadata=_h("random flips and 90-degree rotations"))
    extra_noise: float | str = field(default="auto", metadata=_h(
        "Gaussian noise added in training (data units), removed by the solve"))
    conditioned: bool | str = field(default="auto", metadata=_h(
        "sigma-conditioned score network: True, False, or 'auto' (by the data's photon count)"))
    sigma_a: tuple | None = field(default=None, metadata=_h(
        "AR-DAE perturbation range (normalised units)"))
    anneal_every: int = field(default=50, metadata=_h(
        "steps per stage of an unconditioned network's anneal"))
    precision: str = field(default="fp32", metadata=_h("autocast precision in training"))
    seed: int | None = field(default=None, metadata=_h("random seed"))
    ema: float | None = field(default=None, metadata=_h(
        "decay per step of a moving average of the weights"))
    units: str = field(default="auto", metadata=_h(
        "'data' (one normalisation for all images), 'photons' (each image in its own "
        "photo-electrons, by its own noise estimate) or 'auto' (photons for photon-starved "
        "counts on a sigma-conditioned score network)"))

    def __post_init__(self):
        obj = get_objective(self.objective)  # unknown names: the registry's error
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {self.dims}")
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of "
                             f"{', '.join(PRESETS)} (or None: by the data)")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        lr = obj.lr if self.lr is None else float(self.lr)
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.ema is not None and not 0 < self.ema < 1:
            raise ValueError(f"ema must be in (0, 1) (the decay per step, e.g. 0.99) or None, "
                             f"got {self.ema}")
        if self.extra_noise != "auto" and (not np.isscalar(self.extra_noise)
                                           or not self.extra_noise >= 0):
            raise ValueError(f"extra_noise must be 'auto' or >= 0 (data units), got "
                             f"{self.extra_noise}")
        check_training_units(self.units)
        if self.units == "photons" and (obj.kind != "score" or obj.clean_data):
            raise ValueError(f"units='photons' is for score models trained on noisy images; "
                             f"objective {self.objective!r} trains in the data's units: drop "
                             f"units or use objective='score'")
        if self.units == "photons" and self.conditioned is False:
            raise ValueError("units='photons' needs a sigma-conditioned network (each image "
                             "chooses its sigma_a in its own units); drop conditioned=False")
        if self.conditioned not in (True, False, "auto"):
            raise ValueError(f"conditioned must be True, False or 'auto', got "
                             f"{self.conditioned!r}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.sigma_a is not None:
            sig = tuple(float(v) for v in np.atleast_1d(self.sigma_a))
            if len(sig) != 2 or not all(v > 0 and math.isfinite(v) for v in sig):
                raise ValueError(f"sigma_a must be two values > 0 (normalised units), got "
                                 f"{self.sigma_a}")
            object.__setattr__(self, "sigma_a", sig)
        if isinstance(self.patch_size, list):
            object.__setattr__(self, "patch_size", tuple(self.patch_size))

    def replace(self, **changes) -> TrainConfig:
        """A copy with ``changes`` (field names; others are refused with the valid names)."""
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            raise TypeError(f"unknown training setting(s) {', '.join(unknown)}; the settings "
                            f"are {', '.join(self.names())}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings' names, in order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_dict(self) -> dict:
        """JSON-ready settings (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """The settings of a dict such as a model file's ``meta["training"]``: what it also
        records (device, loss weight, adapted range) is left out; settings a file written
        before a field existed lacks take its default."""
        return cls(**{k: v for k, v in d.items() if k in cls.names()})
