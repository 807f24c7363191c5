"""Loss, perplexity and bits per byte of a whole text, scored in sliding windows (docs/07-evaluation.md).

Bits per byte count the text's bytes: the loss of EOS targets is left out of their numerator (no byte stands for
them), and an unknown word's real bytes are charged 8 bits each (`ScoredBytes`), so a word model gets no bytes for
free. A recurrent model is read as consecutive streams that carry their state, not in windows: that is how it trains.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from lmforge.data.batches import check_long_enough
from lmforge.errors import LmforgeError
from lmforge.models.base import LanguageModel
from lmforge.tokenizers.base import UNKNOWN_BITS_PER_BYTE, ScoredBytes, Tokenizer

if TYPE_CHECKING:
    from lmforge.run import Run

Amp = Optional[contextlib.AbstractContextManager]  # a mixed-precision context, or None for full precision


@dataclass
class EvalResult:
    loss: float  # nats per token
    perplexity: float
    bits_per_byte: float
    tokens: int  # tokens scored
    bytes: int  # UTF-8 bytes those tokens spell
    stride: int | None = None  # sliding-window stride; None: non-overlapping windows, or a recurrent model's streams
    block_size: int | None = None  # the window length
    unknown_bytes: int = 0  # bytes of unknown words, charged 8 bits each in bits per byte
    streams: int | None = None  # a recurrent model: how many streams the text was read as (1: one pass)


@dataclass(frozen=True)
class Window:
    """Inputs `ids[begin : begin+length]`, targets one further; only the last `n_scored` targets count."""

    begin: int
    length: int
    n_scored: int


def sliding_windows(n_ids: int, block_size: int, stride: int) -> list[Window]:
    """The windows that score tokens 1..n_ids-1 exactly once, each with as much context as the stride allows."""
    if not 1 <= stride <= block_size:
        raise LmforgeError(f"--stride must be between 1 and the context size {block_size}, not {stride}")
    windows, scored_to, begin = [], 0, 0  # scored_to: the last target position scored so far
    while scored_to < n_ids - 1:
        end = min(begin + block_size, n_ids - 1)  # last target position of this window
        windows.append(Window(begin, end - begin, end - scored_to))
        scored_to, begin = end, begin + stride
    return windows


def recurrent_streams(n_ids: int, block_size: int, batch_size: int) -> int:
    """How many consecutive streams a recurrent model reads `n_ids` ids as: `batch_size`, each at least one window."""
    return max(1, min(batch_size, (n_ids - 1) // block_size))


@torch.inference_mode()
def iter_token_nats(model: LanguageModel, ids: np.ndarray, block_size: int, batch_size: int, device: torch.device,
                    autocast: Amp = None, stride: int | None = None) -> Iterator[torch.Tensor]:
    """-ln p of every token of `ids` but the first, in order, one batch of windows at a time (float32, on `device`)."""
    if batch_size < 1:
        raise LmforgeError(f"--batch-size must be at least 1, not {batch_size}")
    recurrent = model.recurrent
    if recurrent and stride is not None:
        raise LmforgeError(f"--stride does not apply to a {model.family} model: its state carries everything before "
                           "each token, so there is no window to slide; leave --stride out")
    if block_size < 1:
        raise LmforgeError(f"the window (context) must be at least 1 token, not {block_size}")
    was_training = model.training
    model.eval()
    try:
        if recurrent:
            yield from _stream_nats(model, ids, block_size, batch_size, device, autocast)
        else:
            yield from _window_nats(model, ids, block_size, batch_size, device, autocast, stride)
    finally:
        model.train(was_training)


def _window_nats(model: LanguageModel, ids: np.ndarray, block_size: int, batch_size: int, device: torch.device,
                 autocast: Amp, stride: int | None) -> Iterator[torch.Tensor]:
    windows = sliding_windows(len(ids), block_size, block_size if stride is None else stride)
    same_length = [list(same) for _, same in itertools.groupby(windows, key=lambda w: w.length)]  # the last is shorter
    for group in (same[i : i + batch_size] for same in same_length for i in range(0, len(same), batch_size)):
        length = group[0].length
        nats, _ = _nats_after(model, ids, [w.begin for w in group], length, device, autocast)
        yield torch.cat([nats[i, length - w.n_scored :] for i, w in enumerate(group)])


def _stream_nats(model: LanguageModel, ids: np.ndarray, block_size: int, batch_size: int, device: torch.device,
                 autocast: Amp) -> Iterator[torch.Tensor]:
    """Consecutive streams (`recurrent_streams`), each from a zero state carrying its state across its windows:
    stream b scores targets b*L+1 .. (b+1)*L; the last then goes on alone over the targets left over."""
    n_targets = len(ids) - 1
    if n_targets < 1:
        return
    streams = recurrent_streams(len(ids), block_size, batch_size)
    per_stream = n_targets // streams
    starts = np.arange(streams) * per_stream  # (B,) first input position of each stream
    nats = torch.empty(streams, per_stream, device=device)  # (B, L)
    state = None
    for t in range(0, per_stream, block_size):
        length = min(block_size, per_stream - t)
        nats[:, t : t + length], state = _nats_after(model, ids, starts + t, length, device, autocast, state, True)
    yield nats.reshape(-1)  # stream after stream: text order
    left = n_targets - streams * per_stream
    if left:
        state = model.reorder_state(state, torch.tensor([streams - 1], device=device))  # the last stream's state
        for t in range(0, left, block_size):
            length = min(block_size, left - t)
            part, state = _nats_after(model, ids, [streams * per_stream + t], length, device, autocast, state, True)
            yield part.reshape(-1)


def _nats_after(model: LanguageModel, ids: np.ndarray, begins, length: int, device: torch.device, autocast: Amp,
                state: Any = None, carry: bool = False) -> tuple[torch.Tensor, Any]:
    """-ln p of the `length` targets after each position of `begins`, (b, T); with `carry`, the state in and out."""
    rows = np.asarray(begins)[:, None] + np.arange(length + 1)  # (b, T+1)
    window = torch.from_numpy(ids[rows].astype(np.int64)).to(device)
    with autocast or contextlib.nullcontext():
        logits, state = model(window[:, :-1], state, return_state=True) if carry else (model(window[:, :-1]), None)
    return F.cross_entropy(logits.float().transpose(1, 2), window[:, 1:], reduction="none"), state  # (b, T)


def token_nats(model: LanguageModel, ids: np.ndarray, block_size: int, batch_size: int = 64,
               device: torch.device | None = None, autocast: Amp = None, stride: int | None = None) -> np.ndarray:
    """-ln p of every token of `ids` but the first, as one array (len(ids) - 1,)."""
    device = device or next(model.parameters(), torch.empty(0)).device
    parts = [t.cpu() for t in iter_token_nats(model, ids, block_size, batch_size, device, autocast, stride)]
    return torch.cat(parts).double().numpy() if parts else np.zeros(0)


def scored_bytes(tokenizer: Tokenizer, ids: np.ndarray) -> int:
    """UTF-8 bytes spelled by the scored tokens (all but the first), from the ids alone: bytes(decode(all)) -
    bytes(decode(first)), since a decode need not join its tokens' texts (a word tokenizer adds spaces, a BPE token
    may hold half a character). An unknown token decodes as itself, not as its word: when the text is at hand,
    `Tokenizer.count_scored_bytes` counts from the text instead."""
    ids = [int(i) for i in ids]
    whole = len(tokenizer.decode(ids).encode("utf-8"))
    first = len(tokenizer.decode(ids[:1]).encode("utf-8"))
    return max(whole - first, 0)


def evaluate_ids(model: LanguageModel, tokenizer: Tokenizer, ids: np.ndarray, block_size: int, batch_size: int,
                 device: torch.device, autocast: Amp = None, n_bytes: int | ScoredBytes | None = None,
                 stride: int | None = None) -> EvalResult:
    """Loss, perplexity and bits per byte of `ids`; `stride` (default `block_size`) sets the sliding window.
    `n_bytes`: the bytes bits per byte divides by (with the unknown words' bytes, as `ScoredBytes`); None counts
    them by decoding `ids`."""
    check_long_enough(ids, 1, "evaluation text")
    eos = tokenizer.eos_id
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # nats of all targets, of the EOS targets
    count = 0
    for part in iter_token_nats(model, ids, block_size, batch_size, device, autocast, stride):
        part = part.double()
        sums[0] += part.sum()
        if eos is not None:
            targets = torch.from_numpy(np.asarray(ids[1 + count : 1 + count + part.numel()]).astype(np.int64))
            sums[1] += torch.where(targets.to(part.device) == eos, part, 0.0).sum()
        count += part.numel()
    nats, eos_nats = sums.tolist()  # one sync, at the end
    text_nats = nats - eos_nats  # bits per byte scores the text's bytes: no byte stands for an EOS
    if n_bytes is None:
        n_bytes = scored_bytes(tokenizer, ids)
    counted = n_bytes if isinstance(n_bytes, ScoredBytes) else ScoredBytes(n_bytes)
    bits = text_nats / math.log(2) + UNKNOWN_BITS_PER_BYTE * counted.unknown
    recurrent, loss = model.recurrent, nats / count
    return EvalResult(loss, math.exp(min(loss, 700.0)), bits / max(counted.bytes, 1), count, counted.bytes,
                      stride=None if recurrent else block_size if stride is None else stride, block_size=block_size,
                      unknown_bytes=counted.unknown,
                      streams=recurrent_streams(len(ids), block_size, batch_size) if recurrent else None)


def evaluate_text(model: LanguageModel, tokenizer: Tokenizer, text: str | list[str], block_size: int,
                  batch_size: int, device: torch.device, autocast: Amp = None, stride: int | None = None) -> EvalResult:
    """`evaluate_ids` of a text, or of documents laid out as prepared data lays them (each encoded alone, then EOS,
    so a run trained on a folder scores its val documents as its training evals did); bytes counted from the text.
    `eval`, `compare` and the playground all score with it, so they agree on the same model and text."""
    if isinstance(text, str):
        ids = tokenizer.encode_array(text)
        return evaluate_ids(model, tokenizer, ids, block_size, batch_size, device, autocast,
                            n_bytes=tokenizer.count_scored_bytes(text, ids), stride=stride)
    if not text:
        raise LmforgeError("there are no documents to evaluate; pass --data with text in it")
    eos = [] if tokenizer.eos_id is None else [tokenizer.eos_id]
    encoded = [tokenizer.encode_array(doc) for doc in text]
    ids = np.concatenate([np.concatenate([e, np.asarray(eos, dtype=e.dtype)]) for e in encoded])
    return evaluate_ids(model, tokenizer, ids, block_size, batch_size, device, autocast,
                        n_bytes=documents_scored_bytes(tokenizer, text, encoded[0]), stride=stride)


def documents_scored_bytes(tokenizer: Tokenizer, documents: list[str], first_ids: np.ndarray) -> ScoredBytes:
    """`Tokenizer.count_scored_bytes` of documents scored one after another (`first_ids`: the first one's ids):
    every byte but those of the very first token, which nothing predicts."""
    first = tokenizer.count_scored_bytes(documents[0], first_ids)
    rest = documents[1:]
    return ScoredBytes(first.bytes + sum(len(d.encode("utf-8")) for d in rest),
                       first.unknown + sum(sum(tokenizer.unknown_bytes(d)) for d in rest))


def evaluate_run(run: Run, data: str | Path, stride: int | None = None, batch_size: int = 64) -> dict[str, Any]:
    """`lmforge eval`: `evaluate_text` of the file `data` as a JSON-ready dict; `regress` and `report` measure a file
    with it too. `unknown_chars` counts characters the tokenizer had to replace (the CLI warns about them)."""
    from lmforge.corpus import read_text
    from lmforge.device import autocast, resolve_dtype

    text = read_text(data)
    amp = autocast(run.device, resolve_dtype(run.config.train.dtype, run.device))
    result = evaluate_text(run.model, run.tokenizer, text, run.config.model.block_size, batch_size, run.device, amp,
                           stride=stride)
    return {"run": str(run.path), "data": str(data), "tokenizer": run.tokenizer.kind, **asdict(result),
            "unknown_chars": run.tokenizer.unknown_count(text)}


def format_eval(result: dict[str, Any]) -> str:
    """`evaluate_run`'s result as `lmforge eval` prints it."""
    how = (f"{result['streams']} stream(s) in windows of {result['block_size']}, the state carried"
           if result.get("streams") else f"windows of {result['block_size']} every {result['stride']} tokens")
    return (f"{result['data']}: {result['tokens']:,} tokens, {result['bytes']:,} bytes, {how}\n"
            f"loss        {result['loss']:.4f} nats/token\nperplexity  {result['perplexity']:.3f}\n"
            f"bits/byte   {result['bits_per_byte']:.4f}")
