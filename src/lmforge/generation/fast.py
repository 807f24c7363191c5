"""The fast decode path for CUDA: a decode step whose shapes never change, compiled once.

Decoding one token of a small model on a GPU is bound by kernel launches, not by
arithmetic: a GPT-2-small step launches a few hundred tiny kernels, and Python
issuing them one by one leaves the GPU idle most of the time. If every tensor in
the step keeps the same shape and address from one token to the next, the whole
step can be recorded once as a CUDA graph and replayed with a single launch.

What makes the step static (see `KVCache`, static mode):
- the cache is preallocated for the whole context and reused across calls;
- a step attends over every slot of it, with the empty slots masked out;
- the slot to write is a tensor on the device, advanced in place.

`torch.compile(mode="reduce-overhead")` then fuses the small kernels and
captures the graph. The prompt (variable length) and anything past the context
run eagerly. Plain eager decoding stays the default on the CPU, where launches
are cheap and slicing to the filled slots does less work; this module is
imported only when the static or compiled mode is asked for.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch

from lmforge.errors import LmforgeError
from lmforge.models.kv_cache import KVCache
from lmforge.models.transformer import Transformer

StepFn = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]


def static_stepper(model: torch.nn.Module, batch_size: int, pad: torch.Tensor,
                   compile: bool) -> tuple[StepFn, KVCache]:
    """A `model.step`-like function that decodes single tokens with fixed shapes, and its cache.

    The cache always spans the whole context (so every call has the same shapes) and is kept on the
    model for the next call with the same batch size: a compiled step is tied to the addresses of
    the tensors it was captured with.
    """
    if not isinstance(model, Transformer):
        raise LmforgeError(f"--decode static|compiled works for transformers, not {type(model).__name__}; "
                           "use --decode eager")
    cache = _reusable_cache(model, batch_size, pad, compile)
    decode_one = _compiled_decode(model) if compile else model.decode

    def step(ids: torch.Tensor, state: KVCache) -> tuple[torch.Tensor, KVCache]:
        nonlocal decode_one
        if ids.size(1) != 1 or state.pos + 1 > state.capacity:
            return model.step(ids, state)  # a prompt, or past the context: eager
        if compile:
            torch.compiler.cudagraph_mark_step_begin()  # the previous step's outputs may be overwritten now
            try:
                logits = decode_one(ids, state).clone()
            except Exception as exc:  # noqa: BLE001 - a compiler failure must not cost the user their sample
                print(f"warning: compiled decoding failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                      "continuing eagerly", file=sys.stderr)
                decode_one = model.decode
                logits = decode_one(ids, state)  # writes the same slot again: harmless
        else:
            logits = decode_one(ids, state)
        state.advance(1)
        return logits, state

    return step, cache


def _reusable_cache(model: Transformer, batch_size: int, pad: torch.Tensor, compile: bool) -> KVCache:
    caches: dict[tuple, KVCache] = model.__dict__.setdefault("_static_caches", {})
    weight = model.tok_emb.weight
    key = (batch_size, weight.device, weight.dtype, compile)
    if key not in caches:
        cache = model.new_state(batch_size, model.cfg.block_size, static=True)
        if compile:
            for t in (cache.k, cache.v, cache.ids, cache.slot, cache.pad):
                torch._dynamo.mark_static_address(t)  # mutated in place by the graph: must never be copied
        caches[key] = cache
    cache = caches[key]
    cache.reset(pad if bool(pad.any()) else None)
    return cache


def _compiled_decode(model: Transformer) -> Callable[[torch.Tensor, KVCache], torch.Tensor]:
    """`model.decode` compiled once per model (first call: tens of seconds on a GPU; later ones are free)."""
    compiled = model.__dict__.get("_compiled_decode")
    if compiled is None:
        compiled = torch.compile(model.decode, mode="reduce-overhead", fullgraph=True, dynamic=False)
        model.__dict__["_compiled_decode"] = compiled
    return compiled
