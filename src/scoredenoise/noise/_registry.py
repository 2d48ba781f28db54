"""The registry of noise models: register a class by name, build one by name or from its
dict, list them. The classes register themselves (``@register``) when the package loads."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

from ._errors import NoiseModelError

if TYPE_CHECKING:  # annotations only
    from ._base import NoiseModel


_REGISTRY: dict[str, type[NoiseModel]] = {}

def register(cls: type[NoiseModel]) -> type[NoiseModel]:
    """Class decorator: add a noise model to the registry under ``cls.name``."""
    name = cls.name
    if not name or name in _REGISTRY:
        raise RuntimeError(f"noise model name {name!r} is empty or already registered")
    _REGISTRY[name] = cls
    return cls

def list_noise_models() -> list[str]:
    """Names of all registered noise models, in Table 1 order (then the rest).

    Examples
    --------
    >>> from scoredenoise.noise import list_noise_models
    >>> "poisson-gaussian" in list_noise_models()
    True
    """
    return sorted(_REGISTRY, key=lambda n: (_REGISTRY[n].table1_row or 99, n))

def get_noise_model(name: str, /, **params) -> NoiseModel:
    """Build a registered noise model by name.

    Parameters
    ----------
    name : str
        A name from :func:`list_noise_models`, e.g. ``"poisson-gaussian"``.
    **params
        Parameters in the data's own units; missing ones take their defaults.

    Examples
    --------
    >>> from scoredenoise.noise import get_noise_model
    >>> get_noise_model("gaussian", sigma=10.0)
    Gaussian(sigma=10.0)
    """
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise NoiseModelError(
            f"unknown noise model {name!r}; choose one of: {', '.join(list_noise_models())}"
        ) from None
    _check_names(cls, params)
    return cls(**params)

def _check_names(cls, params: dict) -> None:
    """Unknown parameter names get an error that lists the valid ones."""
    valid = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise NoiseModelError(
            f"{cls.name!r} has no parameter {', '.join(map(repr, unknown))}; its parameters "
            f"are: {', '.join(valid) or 'none'}")

def noise_model_from_dict(d: dict | str) -> NoiseModel:
    """Inverse of :meth:`NoiseModel.to_dict` (also accepts the JSON text)."""
    if isinstance(d, str):
        d = json.loads(d)
    if not isinstance(d, dict) or "name" not in d:
        raise NoiseModelError(f"a noise-model dict needs a 'name' key, got {d!r}")
    return get_noise_model(d["name"], **d.get("params", {}))
