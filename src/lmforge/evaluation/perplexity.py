"""Loss, perplexity and bits per byte over a whole text.

- loss: mean cross-entropy in nats per token, -(1/N) Σ log p(token | context).
- perplexity: exp(loss), the effective number of equally likely choices per token.
- bits per byte: total bits over the UTF-8 bytes those tokens spell,
  Σ -log2 p / bytes. Unlike loss per token, it does not depend on how text is
  cut into tokens, so character, word and BPE models can be compared.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from lmforge.data.windows import check_long_enough, eval_batches
from lmforge.models.base import LanguageModel, next_token_loss
from lmforge.tokenizers.base import Tokenizer


@dataclass
class EvalResult:
    loss: float  # nats per token
    perplexity: float
    bits_per_byte: float
    tokens: int  # tokens scored
    bytes: int  # UTF-8 bytes those tokens spell

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@torch.inference_mode()
def total_nats(
    model: LanguageModel,
    ids: np.ndarray,
    block_size: int,
    batch_size: int,
    device: torch.device,
    autocast: contextlib.AbstractContextManager | None = None,
) -> tuple[float, int]:
    """Sum of -ln p over every token of `ids` but the first, and how many tokens that is."""
    was_training = model.training
    model.eval()
    nats, count = 0.0, 0
    for x, y in eval_batches(ids, block_size, batch_size, device):
        with autocast or contextlib.nullcontext():
            logits = model(x)
        nats += next_token_loss(logits, y).item() * y.numel()
        count += y.numel()
    model.train(was_training)
    return nats, count


def scored_bytes(tokenizer: Tokenizer, ids: np.ndarray) -> int:
    """UTF-8 bytes spelled by the scored tokens (all but the first)."""
    return len(tokenizer.decode(ids[1:].tolist()).encode("utf-8"))


def evaluate_ids(
    model: LanguageModel,
    tokenizer: Tokenizer,
    ids: np.ndarray,
    block_size: int,
    batch_size: int,
    device: torch.device,
    autocast: contextlib.AbstractContextManager | None = None,
    n_bytes: int | None = None,
) -> EvalResult:
    check_long_enough(ids, 1, "evaluation text")
    nats, count = total_nats(model, ids, block_size, batch_size, device, autocast)
    n_bytes = scored_bytes(tokenizer, ids) if n_bytes is None else n_bytes
    loss = nats / count
    return EvalResult(
        loss=loss,
        perplexity=math.exp(min(loss, 700.0)),
        bits_per_byte=nats / math.log(2) / max(n_bytes, 1),
        tokens=count,
        bytes=n_bytes,
    )
