"""Document batches: whole documents right-padded to the longest.

Contiguous windows (`windows.py`) ignore where documents begin and end. Here
each row of a batch is one document (or a piece of a long one), so a model
never sees two documents in one context. Rows are padded on the right to the
longest row, which keeps the padding out of training without any mask reaching
the model:

- the model is given the padded ids alone, no attention mask: with right
  padding and causal attention no real position can attend to a later padded
  one, so a row's logits at its real positions are the document's own.
- targets are `ignore_index` (-100) at padded positions, so they add nothing to
  the cross-entropy (`models.base.next_token_loss`) and nothing to any gradient.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from lmforge.errors import LmforgeError

IGNORE_INDEX = -100


def split_documents(ids: np.ndarray, eos_id: int, block: int = 1 << 22) -> Iterator[np.ndarray]:
    """Each document of a prepared split, its EOS included; `ids` is scanned in blocks, never copied whole."""
    start, n = 0, len(ids)
    for lo in range(0, n, block):
        ends = np.flatnonzero(np.asarray(ids[lo : min(lo + block, n)]) == eos_id) + lo
        for end in ends:
            yield np.asarray(ids[start : end + 1])
            start = end + 1
    if start < n:
        yield np.asarray(ids[start:n])


def pieces_of(doc: np.ndarray, max_len: int) -> Iterator[np.ndarray]:
    """A document as rows of at most max_len + 1 ids; consecutive rows share one id, so every target is scored once."""
    for start in range(0, max(len(doc) - 1, 1), max_len):
        yield doc[start : start + max_len + 1]


def pad_batch(docs: list[np.ndarray], pad_id: int = 0,
              ignore_index: int = IGNORE_INDEX) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows `doc[:-1]` → targets `doc[1:]`, right-padded to the longest row: inputs (B, T), targets (B, T)."""
    if not docs:
        raise LmforgeError("a document batch needs at least one document")
    if any(len(d) < 2 for d in docs):
        raise LmforgeError("every document in a batch needs at least 2 tokens (an input and its target)")
    T = max(len(d) for d in docs) - 1
    inputs = torch.full((len(docs), T), pad_id, dtype=torch.int64)
    targets = torch.full((len(docs), T), ignore_index, dtype=torch.int64)
    for row, doc in enumerate(docs):
        t = torch.from_numpy(np.asarray(doc, dtype=np.int64))
        inputs[row, : len(doc) - 1], targets[row, : len(doc) - 1] = t[:-1], t[1:]
    return inputs, targets


class DocumentFeed:
    """The trainer's feed for `--data.batches documents`: each step, `batch_size` rows drawn at random from the
    split's documents (a long one cut into rows of at most `block_size` + 1 tokens), right-padded.

    Drawn with the trainer's generator, like random windows, so that generator is the whole data position and
    a resumed run draws what an uninterrupted one would.
    """

    def __init__(self, ids: np.ndarray, eos_id: int, batch_size: int, block_size: int, generator: torch.Generator):
        self.rows = [p for doc in split_documents(ids, eos_id) for p in pieces_of(doc, block_size) if len(p) >= 2]
        if not self.rows:
            raise LmforgeError("--data.batches documents found no document of 2 tokens or more in the train split; "
                               "use --data.batches windows")
        self.batch_size, self.generator = batch_size, generator

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        picks = torch.randint(len(self.rows), (self.batch_size,), generator=self.generator).tolist()
        return pad_batch([self.rows[i] for i in picks])

    def forward(self, model: torch.nn.Module, x: torch.Tensor, rows: slice) -> torch.Tensor:
        return model(x)

    def state_dict(self) -> dict:
        return {}  # the generator, which the trainer saves, is the whole position

    def load_state_dict(self, parts: list[dict]) -> None:
        pass
