"""Contiguous windows over a flat array of token ids.

Training draws random windows: inputs are `ids[i : i+T]` and targets the same
window shifted by one, `ids[i+1 : i+T+1]`, so position t learns to predict
token t+1 from tokens up to t. Evaluation instead tiles the split with
non-overlapping windows so that every token after the first is scored exactly
once, and the mean loss is over the *whole* split, not a sample of it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from lmforge.errors import LmforgeError


def split_ids(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """First (1 - val_fraction) of the tokens for training, the rest for validation."""
    n_train = int(len(ids) * (1.0 - val_fraction))
    return ids[:n_train], ids[n_train:]


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


def eval_batches(
    ids: np.ndarray, block_size: int, batch_size: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Non-overlapping windows that score every token of `ids` but the first, exactly once.

    Full windows come in batches of `batch_size`; a shorter last window, if any,
    comes alone. Each window starts its own context, so the first tokens of a
    window are predicted from little context (sliding windows trade time for that).
    """
    n_full = (len(ids) - 1) // block_size
    for start in range(0, n_full, batch_size):
        rows = np.arange(start, min(start + batch_size, n_full))[:, None] * block_size + np.arange(block_size + 1)
        window = torch.from_numpy(ids[rows].astype(np.int64)).to(device)
        yield window[:, :-1], window[:, 1:]
    tail = ids[n_full * block_size :]
    if len(tail) > 1:
        window = torch.from_numpy(tail.astype(np.int64)).to(device)[None]
        yield window[:, :-1], window[:, 1:]
