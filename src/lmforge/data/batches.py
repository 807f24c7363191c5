"""Batches from a flat array of token ids: inputs, and targets the same ids shifted by one (docs/05-training.md).

Three ways to cut them from a split, each behind a training feed with the same four methods:

- `RandomWindowFeed` (the default): `ids[i : i+T]` at random i, every window a fresh start.
- `ConsecutiveWindows` (what the RNN's `TruncatedBPTTFeed` reads): the split cut into `batch_size` streams;
  row b always reads stream b, so a hidden state can be carried from one batch to the next. A new pass starts
  at a random offset below the window length, so window edges fall in new places each pass.
- `DocumentFeed` (`--data.batches documents`): one document per row, right-padded; targets are
  `IGNORE_INDEX` there. Causal attention never looks right, so no mask is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from lmforge.errors import LmforgeError

IGNORE_INDEX = -100


def check_long_enough(ids: np.ndarray, block_size: int, what: str) -> None:
    if len(ids) < block_size + 1:
        raise LmforgeError(
            f"the {what} has {len(ids):,} tokens, fewer than the context of {block_size} plus one; "
            f"use more text or a smaller context (--model.block_size {max(1, len(ids) - 1)})"
        )


def _windows(ids: np.ndarray, starts: np.ndarray, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (B, T) and targets (B, T) of the windows that begin at `starts` (B,)."""
    window = torch.from_numpy(ids[starts[:, None] + np.arange(block_size + 1)].astype(np.int64))  # (B, T+1)
    return window[:, :-1], window[:, 1:]


def random_batch(
    ids: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` random windows: inputs (B, T) and targets shifted by one (B, T)."""
    starts = torch.randint(len(ids) - block_size, (batch_size,), generator=generator).numpy()
    x, y = _windows(ids, starts, block_size)
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


class RandomWindowFeed:
    """Independent random windows each step, each from an empty context: the default training feed.

    `rows` says which rows of the global batch a micro-batch is, so a feed that carries state per row keeps
    each row's own; `load_state_dict` receives every process's `state_dict`, one entry per saving process.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator):
        self.ids, self.batch_size, self.block_size, self.generator = ids, batch_size, block_size, generator

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (B, T) and targets shifted by one (B, T), on the CPU."""
        return random_batch(self.ids, self.batch_size, self.block_size, self.generator, torch.device("cpu"))

    def forward(self, model: torch.nn.Module, x: torch.Tensor, rows: slice) -> torch.Tensor:
        """Logits (b, T, V) for the micro-batch `x`, rows `rows` of this process's share."""
        return model(x)

    def state_dict(self) -> dict[str, Any]:
        return {}  # the generator, which the trainer saves, is the whole position

    def load_state_dict(self, parts: list[dict[str, Any]]) -> None:
        pass


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

    def next(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """Inputs (B, T), targets (B, T), on the CPU, and whether this batch starts a new pass (where any carried
        state must be dropped)."""
        new_pass = self.window < 0 or self.offset + (self.window + 2) * self.block_size + 1 > self.stream_len
        if new_pass:
            room = self.stream_len - self.block_size - 1  # the most the start can move and keep one window
            self.offset = int(torch.randint(min(self.block_size, room) + 1, (1,), generator=self.generator))
            self.window = -1
            self.passes += 1
        self.window += 1
        start = self.offset + self.window * self.block_size
        return *_windows(self.ids, np.arange(self.batch_size) * self.stream_len + start, self.block_size), new_pass

    def state_dict(self) -> dict[str, int]:
        return {"offset": self.offset, "window": self.window, "passes": self.passes}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.offset, self.window, self.passes = state["offset"], state["window"], state["passes"]


def split_documents(ids: np.ndarray, eos_id: int, block: int = 1 << 22) -> Iterator[np.ndarray]:
    """Each document of a prepared split, its EOS included; `ids` is scanned in blocks, never copied whole."""
    start, n = 0, len(ids)
    for lo in range(0, n, block):
        for end in np.flatnonzero(np.asarray(ids[lo : min(lo + block, n)]) == eos_id) + lo:
            yield np.asarray(ids[start : end + 1])
            start = end + 1
    if start < n:
        yield np.asarray(ids[start:n])


def pieces_of(doc: np.ndarray, max_len: int) -> Iterator[np.ndarray]:
    """A document as rows of at most max_len + 1 ids; consecutive rows share one id, so every target is scored once."""
    for start in range(0, max(len(doc) - 1, 1), max_len):
        yield doc[start : start + max_len + 1]


def pad_batch(docs: list[np.ndarray], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows `doc[:-1]` → targets `doc[1:]`, right-padded to the longest row: inputs (B, T), targets (B, T)."""
    if not docs:
        raise LmforgeError("a document batch needs at least one document")
    if any(len(d) < 2 for d in docs):
        raise LmforgeError("every document in a batch needs at least 2 tokens (an input and its target)")
    T = max(len(d) for d in docs) - 1
    inputs = torch.full((len(docs), T), pad_id, dtype=torch.int64)
    targets = torch.full((len(docs), T), IGNORE_INDEX, dtype=torch.int64)
    for row, doc in enumerate(docs):
        t = torch.from_numpy(np.asarray(doc, dtype=np.int64))
        inputs[row, : len(doc) - 1], targets[row, : len(doc) - 1] = t[:-1], t[1:]
    return inputs, targets


class DocumentFeed(RandomWindowFeed):
    """Each step, `batch_size` rows drawn at random from the split's documents (a long one cut into rows of at
    most `block_size` + 1 tokens), right-padded. Drawn with the trainer's generator, like random windows, so a
    resumed run draws what an uninterrupted one would."""

    def __init__(self, ids: np.ndarray, eos_id: int, batch_size: int, block_size: int, generator: torch.Generator):
        self.rows = [p for doc in split_documents(ids, eos_id) for p in pieces_of(doc, block_size) if len(p) >= 2]
        if not self.rows:
            raise LmforgeError("--data.batches documents found no document of 2 tokens or more in the train split; "
                               "use --data.batches windows")
        self.batch_size, self.generator = batch_size, generator

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        picks = torch.randint(len(self.rows), (self.batch_size,), generator=self.generator).tolist()
        return pad_batch([self.rows[i] for i in picks])
