"""Decoding: logits processors, the token-by-token loop, beam search, and text with stop strings.

    processors.py  pure functions on logits, applied by `Sampler` in one documented order
    decode.py      the loop: prefill, then one token per step, for batches of ragged prompts
    continuous.py  continuous batching: rows join a running batch and leave it as they end (lmforge serve)
    beam.py        beam search with a length penalty
    text.py        ids to text as they arrive; stop strings
    fast.py        the static-shape, compiled decode step for CUDA (imported only when used)

The transformer's KV cache lives with the model, in `lmforge.models.kv_cache`.
"""

from lmforge.generation.beam import Beam, beam_search
from lmforge.generation.decode import Step, decode, generate_ids, left_pad
from lmforge.generation.processors import (Sampler, apply_temperature, ban_tokens, min_p_filter,
                                           presence_frequency_penalty, repetition_penalty, top_k_filter, top_p_filter)
from lmforge.generation.text import Continuation

__all__ = [
    "Beam", "Continuation", "Sampler", "Step", "apply_temperature", "ban_tokens", "beam_search", "decode",
    "generate_ids", "left_pad", "min_p_filter", "presence_frequency_penalty", "repetition_penalty",
    "top_k_filter", "top_p_filter",
]
