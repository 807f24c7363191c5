"""The decode loop: feed the prompts once, then one chosen token per row per step.

    for step in decode(model, [[5, 9, 2], [7]], DecodeConfig(max_new_tokens=50, top_p=0.9)):
        step.ids        # (B,) the token each row chose
        step.alive      # (B,) False for a row that already ended with EOS: ignore its token

Prompts of different lengths are left-padded into one batch. A model that can mask
padding (`can_left_pad`, the transformer) decodes them together; any other is
decoded row by row in lockstep, which yields the same steps. Either way each row
gets exactly the tokens it would get alone (greedy decoding, or sampling with one
generator per row).

The loop works for every model family through `model.step`; the transformer's
step uses its KV cache. On CUDA, `mode="auto"` switches to the static-shape,
compiled decode step of `generation/fast.py`; the CPU never imports it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from lmforge.config import DecodeConfig
from lmforge.generation.processors import Generators, Sampler
from lmforge.models.base import LanguageModel
from lmforge.models.kv_cache import KVCache
from lmforge.models.transformer import Transformer

Prompts = torch.Tensor | Sequence[Sequence[int]]


@dataclass
class Step:
    """One token for every row of the batch."""

    ids: torch.Tensor  # (B,) the chosen tokens
    alive: torch.Tensor  # (B,) bool: the row had not ended before this step, so `ids` belongs to its output
    logprobs: torch.Tensor | None = None  # (B,) log-probability of `ids` under the model, before any processor
    top_ids: torch.Tensor | None = None  # (B, k) the model's k most likely tokens, most likely first
    top_logprobs: torch.Tensor | None = None  # (B, k) their log-probabilities


def left_pad(prompts: Prompts, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts as one (B, T) batch, padding on the left with token 0, and the padding of each row (B,)."""
    if isinstance(prompts, torch.Tensor):
        return prompts.to(device), torch.zeros(prompts.size(0), dtype=torch.long, device=device)
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (width - len(p)) + list(p) for p in prompts], dtype=torch.long, device=device)
    pad = torch.tensor([width - len(p) for p in prompts], dtype=torch.long, device=device)
    return ids, pad


def model_device(model: torch.nn.Module) -> torch.device:
    """Where a model's tensors live (a count-based model may hold buffers and no parameters)."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        return t.device
    return torch.device("cpu")


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def resolve_mode(mode: str, model: LanguageModel, device: torch.device) -> str:
    """`auto` is the compiled static-shape path for a transformer on CUDA, and plain eager everywhere else."""
    if mode == "auto":
        return "compiled" if device.type == "cuda" and isinstance(model, Transformer) else "eager"
    return mode


@torch.inference_mode()
def decode(model: LanguageModel, prompts: Prompts, cfg: DecodeConfig, *, generators: Generators = None,
           logprobs: int | None = None) -> Iterator[Step]:
    """Yield one `Step` per new token, at most `cfg.max_new_tokens`, ending early once every row has
    produced `cfg.eos_id`. `logprobs`: None for none; k ≥ 0 for each token's log-probability and the
    k most likely alternatives. The caller may stop iterating at any time (e.g. at a stop string)."""
    ids, pad = left_pad(prompts, model_device(model))
    if bool(pad.any()) and not model.can_left_pad:
        yield from _decode_rows(model, prompts, cfg, generators, logprobs)
        return
    with eval_mode(model):
        yield from _decode_batch(model, ids, pad, cfg, generators, logprobs)


def _decode_batch(model: LanguageModel, ids: torch.Tensor, pad: torch.Tensor, cfg: DecodeConfig,
                  generators: Generators, logprobs: int | None) -> Iterator[Step]:
    B, T = ids.shape
    if cfg.max_new_tokens == 0:
        return
    capacity = T + cfg.max_new_tokens
    mode = resolve_mode(cfg.mode, model, ids.device)
    if mode == "eager":
        step, state = model.step, model.new_state(B, capacity, pad if bool(pad.any()) else None)
    else:
        from lmforge.generation.fast import static_stepper  # CUDA-oriented: imported only when asked for

        step, state = static_stepper(model, B, pad, compile=mode == "compiled")
    logits, state = _prefill(model, step, ids, state)
    mask = torch.arange(T, device=ids.device)[None, :] >= pad[:, None]  # (B, T): real prompt tokens
    sampler = Sampler(cfg, logits.size(-1), ids, mask)
    alive = torch.ones(B, dtype=torch.bool, device=ids.device)
    eos = cfg.eos_id
    for i in range(cfg.max_new_tokens):
        logits = logits.float()
        next_ids = sampler.choose(logits, generators)
        if eos is not None:
            next_ids = torch.where(alive, next_ids, eos)  # an ended row keeps feeding EOS; nobody reads it
        yield Step(next_ids, alive.clone(), *logprob_info(logits, next_ids, logprobs))
        sampler.record(next_ids)
        if eos is not None:
            alive &= next_ids != eos
            if not bool(alive.any()):
                return
        if i + 1 < cfg.max_new_tokens:  # no model call for a token nobody will read
            logits, state = step(next_ids[:, None], state)


def _prefill(model: LanguageModel, step, ids: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
    """Feed the prompts. When every row holds the same prompt (several samples of one prompt) and the
    state is a cache that can copy itself, compute the prompt once and copy it into every row."""
    B = ids.size(0)
    if B > 1 and isinstance(state, KVCache) and bool((ids == ids[:1]).all()):
        one = model.new_state(1, state.capacity)
        logits, one = model.step(ids[:1], one)
        state.prefill(one)
        return logits.expand(B, -1), state
    return step(ids, state)


def logprob_info(logits: torch.Tensor, ids: torch.Tensor, k: int | None) -> tuple[torch.Tensor | None, ...]:
    if k is None:
        return None, None, None
    logp = torch.log_softmax(logits, dim=-1)  # (B, V): the model's own distribution
    chosen = logp.gather(1, ids[:, None]).squeeze(1)
    if k == 0:
        return chosen, None, None
    top = logp.topk(min(k, logp.size(-1)), dim=-1)
    return chosen, top.indices, top.values


def _decode_rows(model: LanguageModel, prompts: Sequence[Sequence[int]], cfg: DecodeConfig,
                 generators: Generators, logprobs: int | None) -> Iterator[Step]:
    """Ragged prompts for a model that cannot mask padding: decode each row alone, in lockstep."""
    per_row = list(generators) if isinstance(generators, Sequence) else [generators] * len(prompts)
    streams = [decode(model, [p], cfg, generators=g, logprobs=logprobs) for p, g in zip(prompts, per_row)]
    for steps in itertools.zip_longest(*streams):  # a row that has ended shows None
        yield _stack_steps(list(steps), cfg.eos_id if cfg.eos_id is not None else 0)


def _stack_steps(steps: list[Step | None], filler: int) -> Step:
    """One batch `Step` from per-row steps; a row that has ended (None) shows `filler`, not alive."""
    ref = next(s for s in steps if s is not None)

    def column(name: str, fill: float) -> torch.Tensor | None:
        like = getattr(ref, name)
        return None if like is None else torch.cat([torch.full_like(like, fill) if s is None else getattr(s, name)
                                                    for s in steps])

    alive = torch.tensor([s is not None and bool(s.alive[0]) for s in steps], device=ref.ids.device)
    return Step(column("ids", filler), alive, column("logprobs", 0.0), column("top_ids", filler),
                column("top_logprobs", float("-inf")))


def generate_ids(model: LanguageModel, prompt_ids: torch.Tensor, max_new_tokens: int, *, greedy: bool = False,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, generator: torch.Generator | None = None,
                 mode: str = "eager") -> Iterator[torch.Tensor]:
    """Yield the next token ids (B,) one step at a time, continuing `prompt_ids` (B, T): `decode` with
    the plain sampling options, for callers that only want the ids. Eager by default: the trainer's
    few samples per eval would not repay compiling a decode step."""
    cfg = DecodeConfig(max_new_tokens=max_new_tokens, greedy=greedy or temperature == 0,
                       temperature=temperature or 1.0, top_k=top_k, top_p=top_p, mode=mode)
    for step in decode(model, prompt_ids, cfg, generators=generator):
        yield step.ids
