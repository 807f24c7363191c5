"""The contract every model family keeps.

Given token ids (B, T), a model returns next-token logits (B, T, V): position t
scores every possible token t+1 from tokens 0..t. For generation it also offers
`step`, which continues from a state instead of recomputing everything; the
default state is simply the ids so far (cropped to the context), which any model
can use, and a family with a cheaper state (a KV cache, an RNN's hidden vector)
overrides it. Training, evaluation and sampling depend on nothing else.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn


class LanguageModel(nn.Module):
    family: ClassVar[str]

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

    def num_params(self) -> int:
        """Distinct parameters (a tied weight counts once)."""
        return sum(p.numel() for p in self.parameters())


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean cross-entropy in nats per target token: mean of -log p(target | context)."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=ignore_index)
