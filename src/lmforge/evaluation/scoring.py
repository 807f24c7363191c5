"""How likely a model finds a continuation of a prompt: the log-likelihood that
multiple-choice probes rank by and that the decoding study averages.

Each continuation token is scored at temperature 1 with no filtering: the
model's own distribution, not the one a decoding strategy sampled from. With
`stride=1` (the default) every token sees the last `block_size` tokens, exactly
what generation fed the model; a larger stride scores long continuations in
fewer windows, each token with at least `block_size - stride + 1` of context.
A recurrent model reads prompt and continuation as one stream from a zero state,
as generation does, so every token sees the whole prompt; `stride` does not apply.
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
    stride: int = 1,
) -> np.ndarray:
    """log p(token | the tokens before it, up to `block_size` of them) for each continuation token."""
    if not prompt_ids:
        raise LmforgeError("the prompt is empty; give at least one character of prompt")
    if not continuation_ids:
        return np.zeros(0)
    full = list(prompt_ids) + list(continuation_ids)
    first = len(prompt_ids)  # position of the first continuation token
    if model.recurrent:  # its state carries the whole prompt, as in generation: one stream, no window to slide
        nats = token_nats(model, np.asarray(full, dtype=np.int64), block_size, 1, device)
        return -nats[-len(continuation_ids) :]
    keep = full[max(0, first - block_size) :]  # enough context for the first continuation token, no more
    ids = np.asarray(keep, dtype=np.int64)
    nats = token_nats(model, ids, block_size, batch_size, device, stride=stride)
    return -nats[-len(continuation_ids) :]
