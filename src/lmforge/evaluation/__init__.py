"""Measuring models: loss, perplexity and bits per byte."""

from lmforge.evaluation.perplexity import EvalResult, evaluate_ids, scored_bytes, total_nats

__all__ = ["EvalResult", "evaluate_ids", "scored_bytes", "total_nats"]
