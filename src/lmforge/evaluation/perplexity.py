"""Loss, perplexity and bits per byte over a whole text, with sliding windows.

- loss: mean cross-entropy in nats per token, -(1/N) Σ log p(token | context).
- perplexity: exp(loss), the effective number of equally likely choices per token.
- bits per byte: total bits over the UTF-8 bytes those tokens spell,
  Σ -log2 p / bytes. Unlike loss per token, it does not depend on how text is
  cut into tokens, so character, word and BPE models can be compared.

Sliding windows. A model sees at most `block_size` tokens, so a long text is
scored window by window. Windows of `block_size` tokens start every `stride`
tokens; each scores only the targets that no earlier window scored (the first
scores all of its own). With `stride == block_size` the windows do not overlap
and a token near the start of a window is predicted from very little context;
with a smaller stride every scored token has at least `block_size - stride + 1`
tokens of context, so the loss falls towards the model's true full-context
loss, and the cost grows by `block_size / stride`. Every token after the first
is scored exactly once whatever the stride, and the result is deterministic.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lmforge.data.windows import check_long_enough
from lmforge.errors import LmforgeError
from lmforge.models.base import LanguageModel
from lmforge.tokenizers.base import Tokenizer


@dataclass
class EvalResult:
    loss: float  # nats per token
    perplexity: float
    bits_per_byte: float
    tokens: int  # tokens scored
    bytes: int  # UTF-8 bytes those tokens spell
    stride: int | None = None  # sliding-window stride; None: non-overlapping windows
    block_size: int | None = None  # the window length

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


@dataclass(frozen=True)
class Window:
    """Inputs `ids[begin : begin+length]`, targets one further; only the last `n_scored` targets count."""

    begin: int
    length: int
    n_scored: int


def sliding_windows(n_ids: int, block_size: int, stride: int) -> list[Window]:
    """The windows that score tokens 1..n_ids-1 exactly once, each with as much context as the stride allows."""
    if block_size < 1:
        raise LmforgeError(f"the window (context) must be at least 1 token, not {block_size}")
    if not 1 <= stride <= block_size:
        raise LmforgeError(f"--stride must be between 1 and the context size {block_size}, not {stride}")
    windows, scored_to, begin = [], 0, 0  # scored_to: the last target position scored so far
    while scored_to < n_ids - 1:
        end = min(begin + block_size, n_ids - 1)  # last target position of this window
        windows.append(Window(begin, end - begin, end - scored_to))
        scored_to, begin = end, begin + stride
    return windows


def _batched(windows: list[Window], batch_size: int) -> Iterator[list[Window]]:
    """Consecutive windows of equal length in groups of at most `batch_size` (only the last window may be shorter)."""
    group: list[Window] = []
    for w in windows:
        if group and (len(group) == batch_size or w.length != group[0].length):
            yield group
            group = []
        group.append(w)
    if group:
        yield group


@torch.inference_mode()
def iter_token_nats(
    model: LanguageModel,
    ids: np.ndarray,
    block_size: int,
    batch_size: int,
    device: torch.device,
    autocast: contextlib.AbstractContextManager | None = None,
    stride: int | None = None,
) -> Iterator[torch.Tensor]:
    """-ln p of every token of `ids` but the first, in order, one batch of windows at a time (float32, on `device`)."""
    stride = block_size if stride is None else stride
    windows = sliding_windows(len(ids), block_size, stride)
    if batch_size < 1:
        raise LmforgeError(f"--batch-size must be at least 1, not {batch_size}")
    was_training = model.training
    model.eval()
    try:
        for group in _batched(windows, batch_size):
            length = group[0].length
            rows = np.array([w.begin for w in group])[:, None] + np.arange(length + 1)  # (B, T+1)
            window = torch.from_numpy(ids[rows].astype(np.int64)).to(device)
            x, y = window[:, :-1], window[:, 1:]  # (B, T) each
            with autocast or contextlib.nullcontext():
                logits = model(x)  # (B, T, V)
            nats = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none")  # (B, T)
            if all(w.n_scored == length for w in group):
                yield nats.reshape(-1)
            else:
                yield torch.cat([nats[i, length - w.n_scored :] for i, w in enumerate(group)])
    finally:
        model.train(was_training)


def token_nats(
    model: LanguageModel,
    ids: np.ndarray,
    block_size: int,
    batch_size: int = 64,
    device: torch.device | None = None,
    autocast: contextlib.AbstractContextManager | None = None,
    stride: int | None = None,
) -> np.ndarray:
    """-ln p of every token of `ids` but the first, as one array (len(ids) - 1,)."""
    device = device or next(model.parameters(), torch.empty(0)).device
    parts = [t.cpu() for t in iter_token_nats(model, ids, block_size, batch_size, device, autocast, stride)]
    return torch.cat(parts).double().numpy() if parts else np.zeros(0)


def total_nats(
    model: LanguageModel,
    ids: np.ndarray,
    block_size: int,
    batch_size: int,
    device: torch.device,
    autocast: contextlib.AbstractContextManager | None = None,
    stride: int | None = None,
) -> tuple[float, int]:
    """Sum of -ln p over every token of `ids` but the first, and how many tokens that is."""
    nats, count = 0.0, 0
    for part in iter_token_nats(model, ids, block_size, batch_size, device, autocast, stride):
        nats += part.double().sum().item()
        count += part.numel()
    return nats, count


def scored_bytes(tokenizer: Tokenizer, ids: np.ndarray) -> int:
    """UTF-8 bytes spelled by the scored tokens (all but the first), for any tokenizer.

    Computed as bytes(decode(all)) - bytes(decode(first)) rather than by decoding
    `ids[1:]` alone: a tokenizer's decode of a sequence need not be the
    concatenation of its tokens' texts (a word tokenizer joins with spaces, a
    byte-level BPE token may hold half a character), so the difference is the
    number of bytes that scoring the rest of the text is responsible for.
    """
    ids = [int(i) for i in ids]
    whole = len(tokenizer.decode(ids).encode("utf-8"))
    first = len(tokenizer.decode(ids[:1]).encode("utf-8"))
    return max(whole - first, 0)


def evaluate_ids(
    model: LanguageModel,
    tokenizer: Tokenizer,
    ids: np.ndarray,
    block_size: int,
    batch_size: int,
    device: torch.device,
    autocast: contextlib.AbstractContextManager | None = None,
    n_bytes: int | None = None,
    stride: int | None = None,
) -> EvalResult:
    """Loss, perplexity and bits per byte of `ids`; `stride` (default `block_size`) sets the sliding window."""
    check_long_enough(ids, 1, "evaluation text")
    nats, count = total_nats(model, ids, block_size, batch_size, device, autocast, stride)
    n_bytes = scored_bytes(tokenizer, ids) if n_bytes is None else n_bytes
    loss = nats / count
    return EvalResult(
        loss=loss,
        perplexity=math.exp(min(loss, 700.0)),
        bits_per_byte=nats / math.log(2) / max(n_bytes, 1),
        tokens=count,
        bytes=n_bytes,
        stride=block_size if stride is None else stride,
        block_size=block_size,
    )
