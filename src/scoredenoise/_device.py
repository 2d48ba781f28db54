"""Device and precision selection."""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_device(device="auto") -> torch.device:
    """``"auto"`` gives CUDA when present, else the CPU; anything torch accepts otherwise."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use "
                         f"device='auto' or 'cpu'")
    return dev


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (CPUs with AVX512-BF16 or AMX, CUDA GPUs
    that support it): bf16 autocast is then about 2x faster; elsewhere it is emulated."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return False


def resolve_precision(device: torch.device, precision: str) -> str:
    """``"auto"``: ``"bf16"`` where the device computes it natively, else ``"fp32"``."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'auto' or one of {PRECISIONS}, got {precision!r}")
    return precision


def autocast(device: torch.device, precision: str):
    """Mixed-precision context: ``"fp32"`` (none), ``"bf16"`` or ``"fp16"`` (CUDA only)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs CUDA; use 'bf16' on the CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
