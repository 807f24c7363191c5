"""Decoding: logits processors and the token-by-token loop."""

from lmforge.generation.decode import generate_ids
from lmforge.generation.processors import apply_temperature, sample_next, top_k_filter, top_p_filter

__all__ = ["apply_temperature", "generate_ids", "sample_next", "top_k_filter", "top_p_filter"]
