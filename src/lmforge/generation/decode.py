"""The decode loop: feed the prompt, then one chosen token at a time."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from lmforge.generation.processors import sample_next
from lmforge.models.base import LanguageModel


@torch.inference_mode()
def generate_ids(
    model: LanguageModel,
    prompt_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the next token ids (B,) one step at a time, continuing `prompt_ids` (B, T).

    The model's own `step` carries whatever state it needs between steps; the
    caller decides when to stop by stopping iteration.
    """
    was_training = model.training
    model.eval()
    try:
        logits, state = model.step(prompt_ids, None)
        for i in range(max_new_tokens):
            next_ids = sample_next(
                logits, greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
            )
            yield next_ids
            if i + 1 < max_new_tokens:  # no model call for a token nobody will read
                logits, state = model.step(next_ids[:, None], state)
    finally:
        model.train(was_training)
