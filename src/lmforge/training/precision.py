"""Precision and speed switches: TF32, a gradient scaler for float16, torch.compile.

The autocast dtype itself is chosen in `lmforge.device` (bfloat16 on GPUs that
have it, float32 elsewhere). float16 has too few exponent bits for small
gradients, so its loss is scaled up before backward and the gradients scaled back
down before the step; the scaler skips steps whose gradients overflowed and
lowers the scale. bfloat16 has float32's range and needs none of this.
"""

from __future__ import annotations

import torch


def set_tf32(enabled: bool) -> None:
    """TensorFloat-32 matmuls (10-bit mantissa, float32 range) on GPUs with them: several times faster than
    full float32 and accurate enough for training. No effect on CPUs."""
    torch.set_float32_matmul_precision("high" if enabled else "highest")


def should_compile(setting: str, device: torch.device) -> bool:
    """`auto` compiles on CUDA only: elsewhere compiling takes longer than it saves on small runs."""
    if setting == "auto":
        return device.type == "cuda"
    return setting == "true"


def grad_scaler(device: torch.device, dtype: torch.dtype) -> torch.amp.GradScaler:
    """A scaler that is active for float16 and a pass-through otherwise."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
