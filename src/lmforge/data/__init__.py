"""From token ids to training batches: splits, random windows, and eval windows."""

from lmforge.data.windows import eval_batches, random_batch, split_ids

__all__ = ["eval_batches", "random_batch", "split_ids"]
