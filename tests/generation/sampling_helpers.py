"""One way for tests to sample a token: through `Sampler.choose`, the path decoding takes."""

import torch

from lmforge.config import DecodeConfig
from lmforge.generation.processors import Sampler


def sample_next(logits: torch.Tensor, generator=None, **settings) -> torch.Tensor:
    """One token per row of `logits` (B, V) under the `DecodeConfig` `settings`, no penalties."""
    prompts = torch.zeros(logits.size(0), 1, dtype=torch.long)
    return Sampler(DecodeConfig(**settings), logits.size(-1), prompts).choose(logits, generator)
