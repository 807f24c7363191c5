"""From text to training batches: prepared token shards, splits, random windows, padded document batches."""

from lmforge.data.batches import pad_batch, random_batch, split_documents
from lmforge.data.shards import PreparedData, ShardedTokens, is_prepared_dir

__all__ = ["PreparedData", "ShardedTokens", "is_prepared_dir", "pad_batch", "random_batch", "split_documents"]
