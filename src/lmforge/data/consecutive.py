"""Consecutive windows: batches in which each row carries on where it stopped.

Random windows (data/windows.py) treat every window as a fresh start. A recurrent
model can do better: if row b of this batch is the text that directly follows
row b of the last batch, its hidden state can be carried across (truncated
backpropagation through time). So the train split is cut into `batch_size`
equal streams, row b always reads stream b, and step k reads the k-th window of
every stream:

    stream 0: [ window 0 ][ window 1 ][ window 2 ] ...   → row 0 of batches 0, 1, 2 ...
    stream 1: [ window 0 ][ window 1 ][ window 2 ] ...   → row 1 of batches 0, 1, 2 ...

When the streams run out, a new pass starts from a random offset below the
window length, so window edges fall in new places each pass; `next` reports the
start of a pass, where any carried state must be dropped.
"""

from __future__ import annotations

import numpy as np
import torch

from lmforge.errors import LmforgeError


class ConsecutiveWindows:
    def __init__(self, ids: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator):
        self.stream_len = len(ids) // batch_size
        if self.stream_len < block_size + 1:
            raise LmforgeError(
                f"consecutive windows cut the train split ({len(ids):,} tokens) into --train.batch_size {batch_size} "
                f"streams of {self.stream_len:,} tokens, fewer than --model.block_size {block_size} plus one; "
                "lower one of the two or use more text"
            )
        self.ids, self.batch_size, self.block_size, self.generator = ids, batch_size, block_size, generator
        self.offset = 0  # where the current pass started in every stream
        self.window = -1  # index of the last window given in this pass; -1: a pass has yet to start
        self.passes = 0

    def _fits(self, window: int) -> bool:
        return self.offset + (window + 1) * self.block_size + 1 <= self.stream_len

    def next(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """Inputs (B, T), targets shifted by one (B, T), on the CPU, and whether this batch starts a new pass."""
        new_pass = self.window < 0 or not self._fits(self.window + 1)
        if new_pass:
            room = self.stream_len - self.block_size - 1  # the most the start can move and keep one window
            self.offset = int(torch.randint(min(self.block_size, room) + 1, (1,), generator=self.generator))
            self.window = -1
            self.passes += 1
        self.window += 1
        start = self.offset + self.window * self.block_size
        rows = (np.arange(self.batch_size) * self.stream_len + start)[:, None] + np.arange(self.block_size + 1)
        chunk = torch.from_numpy(self.ids[rows].astype(np.int64))  # (B, T+1): row b from stream b
        return chunk[:, :-1], chunk[:, 1:], new_pass

    def state_dict(self) -> dict[str, int]:
        return {"offset": self.offset, "window": self.window, "passes": self.passes}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.offset, self.window, self.passes = state["offset"], state["window"], state["passes"]
