"""Measuring models: loss, perplexity and bits per byte, probes, the decoding study,
regression checks and the run report (each in its own module)."""

from lmforge.evaluation.perplexity import EvalResult, evaluate_ids, scored_bytes, sliding_windows, token_nats

__all__ = ["EvalResult", "evaluate_ids", "scored_bytes", "sliding_windows", "token_nats"]
