"""What training reads: a tokenizer and the train and val ids, from any `--data`, a prepared directory, or a text.

A prepared directory brings its own tokenizer and split. Any other `--data` is prepared into RUN_DIR/data by
`prepare`'s code and split rule, and read from there as memory-mapped shards, so memory does not grow with the
corpus. A text in memory is cut by the rule of one text file, so it gives the ids that file would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmforge.config import Config
from lmforge.corpus import builtin_corpus
from lmforge.data.inputs import Inputs, text_cut
from lmforge.data.prepare import PrepareOptions, prepare_inputs
from lmforge.data.shards import INDEX_FILE, PreparedData, ShardedTokens, is_partial, is_prepared_dir
from lmforge.data.sources import total_bytes
from lmforge.data.batches import check_long_enough
from lmforge.errors import LmforgeError
from lmforge.tokenizers import Tokenizer, train_tokenizer
from lmforge.tokenizers.base import ScoredBytes

PREPARED_DIR = "data"  # RUN_DIR/data: a raw --data, prepared for this run


@dataclass
class TrainingData:
    tokenizer: Tokenizer
    train_ids: np.ndarray | ShardedTokens
    val_ids: np.ndarray | ShardedTokens
    val_bytes: ScoredBytes  # what val bits per byte divides by, and the unknown words' bytes it charges
    documents: bool = False  # documents that end with EOS (prepared, not one text), for --data.batches documents


def load_training_data(cfg: Config, text: str | None = None, tokenizer: Tokenizer | None = None,
                       run_dir: Path | None = None, main: bool = True,
                       wait: Callable[[], None] = lambda: None) -> TrainingData:
    """The tokenizer and id splits `cfg.data` asks for; checks both splits are longer than the context.

    `run_dir`: where a raw --data is prepared (RUN_DIR/data). Under torchrun only the `main` rank prepares;
    every rank calls `wait` (a barrier) before reading what it wrote.
    """
    d = cfg.data
    if text is not None or d.path is None:
        data = _from_text(cfg, builtin_corpus() if text is None else text, tokenizer)
    else:
        if is_prepared_dir(d.path):
            path = Path(d.path)
        else:
            if run_dir is None:
                raise LmforgeError(f"--data '{d.path}' must be prepared first; pass a run directory to prepare it in")
            path = run_dir / PREPARED_DIR
            if main:
                _prepare_for_run(cfg, path, tokenizer)
            wait()
        prepared = PreparedData(path)
        data = TrainingData(prepared.tokenizer, prepared.split("train"), prepared.split("val"),
                            prepared.scored_bytes("val"), documents=prepared.index.get("split") != "position")
    check_long_enough(data.val_ids, cfg.model.block_size, "val split")
    check_long_enough(data.train_ids, cfg.model.block_size, "train split")
    return data


def _from_text(cfg: Config, text: str, tokenizer: Tokenizer | None) -> TrainingData:
    d = cfg.data
    cut = text_cut(text, d.val_fraction)
    train_text, val_text = text[:cut], text[cut:]
    if tokenizer is None:
        tokenizer = train_tokenizer(d.tokenizer, text if d.tokenizer == "char" else train_text, d.vocab_size)
    val_ids = tokenizer.encode_array(val_text)
    return TrainingData(tokenizer, tokenizer.encode_array(train_text), val_ids,
                        tokenizer.count_scored_bytes(val_text, val_ids))


def inputs_of(cfg: Config) -> Inputs:
    """The documents of a raw `--data`, by the run's text field, separator and val fraction."""
    d = cfg.data
    return Inputs(d.path, d.text_field, d.separator, d.val_fraction)


def _prepare_for_run(cfg: Config, path: Path, tokenizer: Tokenizer | None) -> None:
    """Prepare `--data` into `path` (RUN_DIR/data), unless it holds data prepared from the same request."""
    d = cfg.data
    request = {"source": str(d.path), "text_field": d.text_field, "separator": d.separator,
               "val_fraction": d.val_fraction, "tokenizer": d.tokenizer, "vocab_size": d.vocab_size}
    if is_prepared_dir(path):
        index = json.loads((path / INDEX_FILE).read_text(encoding="utf-8"))
        if tokenizer is not None:  # a resumed run reads its own, unless given other text (the same, moved, is fine)
            if index.get("source") != str(d.path):
                files = inputs_of(cfg).files
                if (len(files), total_bytes(files)) != (index.get("files"), index.get("input_bytes")):
                    raise LmforgeError(f"--data '{d.path}' is not the text this run was trained on ('{index.get('source')}"
                                       f"', {index.get('input_bytes'):,} bytes); resume with the same --data")
            return
        if index.get("request") == request:
            return  # a rerun of the same command (e.g. after a config error) reads what the first one prepared
        raise LmforgeError(f"'{path}' holds data prepared from other inputs or settings; delete that folder or "
                           "choose a new --out")
    if path.is_dir() and any(not is_partial(p.name) for p in path.iterdir()):
        raise LmforgeError(f"'{path}' holds files of its own, and a run keeps its prepared --data there; "
                           "choose a new --out")
    inputs = inputs_of(cfg)
    if tokenizer is None:
        tokenizer = train_tokenizer(d.tokenizer, inputs.tokenizer_texts(d.tokenizer), d.vocab_size,
                                    documents=inputs.documents)
    prepare_inputs(inputs, tokenizer, path, PrepareOptions(val_fraction=d.val_fraction, progress=cfg.train.progress,
                                                          val_flag="--data.val_fraction", seed_flag=None),
                   extra={"request": request})
