"""The contract every model family keeps: ids (B, T) in, next-token logits (B, T, V) out.

Position t scores every possible token t+1 from tokens 0..t. Generation continues with
`step(ids, state)`, whose default state is the ids so far (cropped to the context); a family
with a cheaper state (a KV cache, an RNN's hidden vector) overrides it. Training, evaluation
and sampling depend on nothing else, plus the hooks below for how a family learns
(`training_feed`, `fitted_by_counts`, `recurrent`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmforge.data.batches import IGNORE_INDEX, RandomWindowFeed


class LanguageModel(nn.Module):
    family: ClassVar[str]
    fitted_by_counts: ClassVar[bool] = False  # True: not trained by gradient steps; the trainer calls `fit_counts` once
    can_left_pad: ClassVar[bool] = False  # whether `new_state(pad=...)` can make it skip left padding
    # True: forward(ids, state, return_state=True) carries a whole-past state, so evaluation reads a text as
    # consecutive streams carrying it, as training does, instead of windows that each start from nothing
    recurrent: ClassVar[bool] = False
    vocab_size: int  # the tokenizer's, given to the constructor: logits are (..., vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, V)
        raise NotImplementedError

    @property
    def context_size(self) -> int | None:
        """The most tokens the model can look back on; None when unbounded."""
        return None

    def step(self, ids: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Feed new tokens `ids` (B, t) after `state`; return the last position's logits (B, V) and the new state."""
        context = ids if state is None else torch.cat([state, ids], dim=1)
        if self.context_size is not None:
            context = context[:, -self.context_size :]
        return self(context)[:, -1, :], context

    def training_feed(self, ids: np.ndarray, batch_size: int, block_size: int,
                      generator: torch.Generator) -> RandomWindowFeed:
        """How the trainer draws batches from the train split `ids` (an RNN: consecutive windows, state carried)."""
        return RandomWindowFeed(ids, batch_size, block_size, generator)

    def fit_counts(self, ids: np.ndarray) -> None:
        """Fit from the counts of the train split `ids` (count-based families only)."""
        raise NotImplementedError(f"a {self.family} model is trained by gradient steps, not fitted from counts")

    def new_state(self, batch_size: int, capacity: int | None = None, pad: torch.Tensor | None = None) -> Any:
        """A fresh state for `step` (here None) for `batch_size` rows of up to `capacity` tokens; `pad` (B,)
        counts each row's left-padding tokens, which only a family with `can_left_pad` accepts."""
        if pad is not None and bool(pad.any()):
            raise ValueError(f"{type(self).__name__} cannot skip left padding; decode its rows one at a time")
        return None

    def reorder_state(self, state: Any, rows: torch.Tensor) -> Any:
        """The state of rows `rows` (R,), in that order, for beam search: the default state (ids, batch first),
        or an object with a `reorder(rows)` method (the KV cache)."""
        if state is None:
            return None
        if isinstance(state, torch.Tensor):
            return state.index_select(0, rows)
        if hasattr(state, "reorder"):
            state.reorder(rows)
            return state
        raise TypeError(f"{type(self).__name__}: cannot reorder a state of type {type(state).__name__}")

    def output_head(self) -> nn.Module | None:
        """The layer that turns features into logits (None: none), which the optimizer keeps out of the hidden
        matrices that get weight decay and Muon (`training/optim.py`)."""
        return None

    def num_params(self) -> int:
        """Distinct parameters (a tied weight counts once)."""
        return sum(p.numel() for p in self.parameters())

    def describe(self) -> str:
        """A few words naming the model's shape, for logs, the command line and comparisons."""
        return self.family


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy in nats, -log p(target | context), over the targets that are not `IGNORE_INDEX` (padding).

    `reduction="mean"`: nats per real target. `"sum"`: their total, for a caller that divides by a count
    it knows better, such as the trainer, whose micro-batches of padded documents hold different numbers of
    real targets: the mean of their means would weigh a short document's tokens more than a long one's.
    """
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=IGNORE_INDEX,
                           reduction=reduction)
