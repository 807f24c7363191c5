"""Contiguous windows over a flat array of token ids.

Training draws random windows: inputs are `ids[i : i+T]` and targets the same
window shifted by one, `ids[i+1 : i+T+1]`, so position t learns to predict
token t+1 from tokens up to t. Evaluation instead tiles the split with
non-overlapping windows (`evaluation/perplexity.py`), so that every token after
the first is scored exactly once.
"""

from __future__ import annotations


import numpy as np
import torch

from lmforge.errors import LmforgeError


def check_long_enough(ids: np.ndarray, block_size: int, what: str) -> None:
    if len(ids) < block_size + 1:
        raise LmforgeError(
            f"the {what} has {len(ids):,} tokens, fewer than the context of {block_size} plus one; "
            f"use more text or a smaller context (--model.block_size {max(1, len(ids) - 1)})"
        )


def random_batch(
    ids: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` random windows: inputs (B, T) and targets shifted by one (B, T)."""
    starts = torch.randint(len(ids) - block_size, (batch_size,), generator=generator).numpy()
    rows = starts[:, None] + np.arange(block_size + 1)  # (B, T+1) indices into ids
    window = torch.from_numpy(ids[rows].astype(np.int64))
    x, y = window[:, :-1], window[:, 1:]
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)
