"""Model FLOPs utilization (MFU) = (FLOPs per token × tokens/s) / (peak FLOP/s × devices).

FLOPs per token of training follow the PaLM paper: 6 per parameter in a matrix multiply (2 forward,
4 backward), plus attention's score and value products, 12 · n_layer · n_embd · T. Peak FLOP/s: dense
tensor-core figures from the vendors' data sheets, matched on the device name; CPUs and GPUs missing
from the table give no MFU (None), never a guess; `--train.peak_flops` supplies the figure for them.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from lmforge.models.base import LanguageModel

# name (a whole word of the lowercased device name) → (bf16/fp16 dense FLOP/s, float32-matmul dense FLOP/s with
# TF32 allowed; plain FP32 on GPUs without TF32). More specific names first.
PEAK_FLOPS: list[tuple[str, tuple[float, float]]] = [
    ("gb200", (2.5e15, 1.25e15)),
    ("b200", (2.25e15, 1.1e15)),
    ("h200", (989e12, 494e12)),
    ("h100 nvl", (835e12, 418e12)),
    ("h100 pcie", (756e12, 378e12)),
    ("h100", (989e12, 494e12)),  # SXM
    ("h800", (989e12, 494e12)),
    ("gh200", (989e12, 494e12)),
    ("a100", (312e12, 156e12)),
    ("a800", (312e12, 156e12)),
    ("l40s", (362e12, 183e12)),
    ("l40", (181e12, 90.5e12)),
    ("l4", (121e12, 60e12)),
    ("a6000", (155e12, 77.4e12)),
    ("a10", (125e12, 62.5e12)),
    ("rtx 4090", (165e12, 82.6e12)),
    ("rtx 3090", (71e12, 35.6e12)),
    ("v100", (125e12, 15.7e12)),  # no TF32: plain FP32
    ("t4", (65e12, 8.1e12)),
    ("mi300x", (1.307e15, 653e12)),
    ("mi250x", (383e12, 95.7e12)),
]


def flops_per_token(model: LanguageModel) -> float:
    """Training FLOPs (forward + backward) per token for this model. Embedding tables are looked up, not multiplied
    (the position table, and the token table unless it is also the tied output head), so they count for nothing."""
    head = model.output_head()
    looked_up = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    looked_up -= {id(p) for p in head.parameters()} if head is not None else set()
    matmul_params = model.num_params() - sum(p.numel() for p in model.parameters() if id(p) in looked_up)
    if model.family != "transformer":
        return 6.0 * matmul_params
    return 6.0 * matmul_params + 12.0 * model.cfg.n_layer * model.cfg.n_embd * model.cfg.block_size


def peak_flops(device: torch.device, dtype: torch.dtype, tf32: bool) -> float | None:
    """Peak dense FLOP/s of one device at this precision, from the table; None when unknown (CPUs, unlisted GPUs)."""
    if device.type != "cuda":
        return None
    return table_peak(torch.cuda.get_device_name(device), dtype, tf32)


def table_peak(device_name: str, dtype: torch.dtype, tf32: bool) -> float | None:
    name = device_name.lower()
    for word, (half, single) in PEAK_FLOPS:
        if re.search(rf"\b{re.escape(word)}\b", name):
            if dtype in (torch.bfloat16, torch.float16):
                return half
            return single if tf32 else None  # float32 without TF32: the table has no figure
    return None


def mfu(tokens_per_s: float, per_token: float, peak_per_device: float | None, devices: int) -> float | None:
    """The achieved share of peak, in [0, 1]; None without a peak figure."""
    if not peak_per_device:
        return None
    return tokens_per_s * per_token / (peak_per_device * devices)
