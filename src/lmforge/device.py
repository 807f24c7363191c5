"""Choosing where and in what precision to compute."""

from __future__ import annotations

import contextlib

import torch

from lmforge.config import _device
from lmforge.errors import LmforgeError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(name: str = "auto", flag: str = "--train.device") -> torch.device:
    """`auto` picks CUDA, then Apple's MPS, then the CPU. `flag` gave the name: training's config key, or a
    command's --device."""
    try:
        _device(name)
    except ValueError as exc:
        raise LmforgeError(f"{flag} {exc}, not {name!r}") from None
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LmforgeError(f"{flag} {name}: no CUDA GPU is visible; use {flag} cpu (or auto)")
    if name == "mps" and not mps:
        raise LmforgeError(f"{flag} mps: Apple's MPS is not available here; use {flag} cpu (or auto)")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto` is bfloat16 autocast on GPUs that support it and float32 elsewhere."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    return DTYPES[name]


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass; a no-op in float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
