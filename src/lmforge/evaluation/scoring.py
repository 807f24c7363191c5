"""How likely a model finds a continuation of a prompt: the log-likelihood that
multiple-choice probes rank by and that the decoding study averages.

Each continuation token is scored with as much context as the model can see
(the last `block_size` tokens, exactly what generation feeds it), at
temperature 1 with no filtering: the model's own distribution, not the one a
decoding strategy sampled from.
"""

from __future__ import annotations

import numpy as np
import torch

from lmforge.errors import LmforgeError
from lmforge.evaluation.perplexity import token_nats
from lmforge.models.base import LanguageModel


def continuation_logprobs(
    model: LanguageModel,
    prompt_ids: list[int],
    continuation_ids: list[int],
    block_size: int,
    device: torch.device,
    batch_size: int = 64,
) -> np.ndarray:
    """log p(token | everything before it, up to `block_size` tokens) for each continuation token."""
    if not prompt_ids:
        raise LmforgeError("the prompt is empty; give at least one character of prompt")
    if not continuation_ids:
        return np.zeros(0)
    full = list(prompt_ids) + list(continuation_ids)
    first = len(prompt_ids)  # position of the first continuation token
    keep = full[max(0, first - block_size) :]  # enough context for the first continuation token, no more
    ids = np.asarray(keep, dtype=np.int64)
    nats = token_nats(model, ids, block_size, batch_size, device, stride=1)  # every token with the most context
    return -nats[-len(continuation_ids) :]
