"""What training reads: a tokenizer and the train and val ids, from a text or a prepared directory.

- A prepared directory (`lmforge prepare`) brings its own tokenizer and its
  split by document; `--tokenizer`, `--vocab-size` and `--data.val_fraction`
  do not apply to it.
- A text (a file, or the built-in corpus) is cut at (1 - val_fraction) of its
  characters: the first part trains, the rest is val. The parts are encoded
  separately, so val bits per byte count exactly the val text's bytes. A char
  vocabulary comes from the whole text (the Tiny Shakespeare protocol); word
  and BPE vocabularies from the train part only, so val words stay unseen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmforge.config import Config
from lmforge.corpus import load_corpus
from lmforge.data.shards import PreparedData, ShardedTokens, is_prepared_dir
from lmforge.data.windows import check_long_enough
from lmforge.tokenizers import Tokenizer, train_tokenizer
from lmforge.tokenizers.cuts import safe_cut


@dataclass
class TrainingData:
    tokenizer: Tokenizer
    train_ids: np.ndarray | ShardedTokens
    val_ids: np.ndarray | ShardedTokens
    val_bytes: int  # UTF-8 bytes spelled by the scored val tokens (all but the first), for bits per byte


def load_training_data(cfg: Config, text: str | None = None, tokenizer: Tokenizer | None = None) -> TrainingData:
    """The tokenizer and id splits `cfg.data` asks for; checks both splits are longer than the context."""
    d = cfg.data
    if text is None and is_prepared_dir(d.path):
        prepared = PreparedData(d.path)
        data = TrainingData(prepared.tokenizer, prepared.split("train"), prepared.split("val"),
                            prepared.scored_bytes("val"))
        d.tokenizer = prepared.tokenizer.kind  # so config.yaml records what was used
    else:
        if text is None:
            text, _ = load_corpus(d.path)
        cut = int(len(text) * (1.0 - d.val_fraction))
        if d.tokenizer != "char":
            cut = safe_cut(text, max(cut - 4096, 0), cut)  # where BPE and word pieces end anyway
        train_text, val_text = text[:cut], text[cut:]
        if tokenizer is None:
            tokenizer = train_tokenizer(d.tokenizer, text if d.tokenizer == "char" else train_text, d.vocab_size)
        val_ids = tokenizer.encode_array(val_text)
        data = TrainingData(tokenizer, tokenizer.encode_array(train_text), val_ids,
                            tokenizer.scored_bytes(val_ids, len(val_text.encode("utf-8"))))
    check_long_enough(data.val_ids, cfg.model.block_size, "val split")
    check_long_enough(data.train_ids, cfg.model.block_size, "train split")
    return data
