"""From text to training batches: prepared token shards, splits, random windows, padded document batches."""

from lmforge.data.documents import pad_batch, split_documents
from lmforge.data.shards import PreparedData, ShardedTokens, is_prepared_dir
from lmforge.data.windows import random_batch

__all__ = ["PreparedData", "ShardedTokens", "is_prepared_dir", "pad_batch", "random_batch",
           "split_documents"]
