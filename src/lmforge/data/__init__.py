"""From text to training batches: prepared token shards, splits, random windows, padded document batches."""

from lmforge.data.documents import DocumentBatch, document_batches, pad_batch, split_documents
from lmforge.data.shards import PreparedData, ShardedTokens, is_prepared_dir
from lmforge.data.windows import eval_batches, random_batch, split_ids

__all__ = ["DocumentBatch", "PreparedData", "ShardedTokens", "document_batches", "eval_batches", "is_prepared_dir",
           "pad_batch", "random_batch", "split_documents", "split_ids"]
