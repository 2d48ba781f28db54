"""numpy-or-torch arithmetic shared by the noise models: numpy in gives numpy out, a
tensor in gives a tensor on the same device out."""

from __future__ import annotations

import numpy as np
import torch

from ._errors import NoiseModelError


def _float_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype in (torch.float32, torch.float64):
        return dtype
    return torch.float32

def as_tensor(a, *, like: torch.Tensor | None = None) -> torch.Tensor:
    """Return ``a`` as a floating torch tensor (no copy where possible)."""
    if isinstance(a, torch.Tensor):
        t = a
    else:
        arr = np.asarray(a)
        if arr.dtype.kind not in "fiub":
            raise NoiseModelError(f"expected a numeric array, got dtype {arr.dtype}")
        if arr.dtype == np.float16:
            arr = arr.astype(np.float32)
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if like is not None:
        t = t.to(device=like.device)
        dtype = like.dtype if t.dtype not in (torch.float64,) else torch.promote_types(
            like.dtype, t.dtype)
        return t.to(_float_dtype(dtype))
    return t.to(_float_dtype(t.dtype))

def to_output(t: torch.Tensor, template):
    """Give ``t`` back in the type of ``template`` (numpy array or torch tensor)."""
    if isinstance(template, torch.Tensor):
        return t
    return t.detach().cpu().numpy()

def _check_finite(name: str, t: torch.Tensor, model: str) -> None:
    if not bool(torch.isfinite(t).all()):
        n_bad = int((~torch.isfinite(t)).sum())
        raise NoiseModelError(
            f"{model}: {name} contains {n_bad} NaN or infinite value(s); "
            f"replace them (e.g. numpy.nan_to_num) or crop them away before denoising")

def _common(model: str, **arrays):
    """Convert arrays to tensors of one dtype/device, check finiteness and equal shapes."""
    names = list(arrays)
    first = as_tensor(arrays[names[0]])
    tensors = {names[0]: first}
    for n in names[1:]:
        tensors[n] = as_tensor(arrays[n], like=first)
    dtype = first.dtype
    for t in tensors.values():
        dtype = torch.promote_types(dtype, t.dtype)
    tensors = {n: t.to(dtype) for n, t in tensors.items()}
    shapes = {n: tuple(t.shape) for n, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        desc = ", ".join(f"{n} {s}" for n, s in shapes.items())
        raise NoiseModelError(
            f"{model}: shapes differ ({desc}); pass arrays of the same shape, e.g. the score "
            f"computed on this very image")
    for n, t in tensors.items():
        _check_finite(n, t, model)
    return tensors

def default_rng(rng) -> np.random.Generator:
    """``numpy.random.default_rng`` that also accepts an existing Generator or None."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)

def _nested_lists(v):
    if isinstance(v, (tuple, list)):
        return [_nested_lists(e) for e in v]
    return float(v)

def support_error(model: str, what: str, y: torch.Tensor, bad: torch.Tensor, hint: str):
    """Raise a clear error for data outside a model's support."""
    n_bad = int(bad.sum())
    worst = float(y[bad].min()) if n_bad else float("nan")
    raise NoiseModelError(
        f"{model}: y must be {what}, but {n_bad} of {y.numel()} values are not "
        f"(smallest {worst:g}); {hint}")

def safe_log(t: torch.Tensor, tiny: float | None = None) -> torch.Tensor:
    """log of a tensor clamped to the smallest positive normal of its dtype."""
    tiny = torch.finfo(t.dtype).tiny if tiny is None else tiny
    return torch.log(torch.clamp(t, min=tiny))
