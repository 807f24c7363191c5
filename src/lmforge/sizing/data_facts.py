"""What sizing needs to know about the data without training: the vocabulary and the splits' lengths.

A model's vocabulary is its tokenizer's, so sizing a config needs the tokenizer it
would train. That is cheap for characters (every character of the text) and for a
prepared directory (it brings its tokenizer), and read from tokenizer.json for a
run directory. Training a word or BPE tokenizer is not cheap, so for those the
vocabulary is the one asked for (`--data.vocab_size`, 8192 by default), which a
small text may not fill: the report says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lmforge.config import Config
from lmforge.errors import LmforgeError


@dataclass
class DataFacts:
    vocab_size: int
    source: str  # what the vocabulary and lengths were read from, for the report
    train_tokens: int | None = None
    val_tokens: int | None = None
    train_tok_s: float | None = None  # a run's measured training speed
    weights: Path | None = None  # a run's model.safetensors (an n-gram's table sizes are in its header)


def for_config(cfg: Config) -> DataFacts:
    d = cfg.data
    from lmforge.data.shards import PreparedData, is_prepared_dir

    if d.path is not None and is_prepared_dir(d.path):
        prepared = PreparedData(d.path)
        splits = prepared.index["splits"]
        return DataFacts(prepared.tokenizer.vocab_size, f"the {prepared.tokenizer.kind} tokenizer of {d.path}",
                         _split_tokens(splits["train"]), _split_tokens(splits["val"]))
    where = d.path or "the built-in corpus"
    if d.tokenizer != "char":
        from lmforge.tokenizers import DEFAULT_VOCAB_SIZE

        return DataFacts(d.vocab_size or DEFAULT_VOCAB_SIZE, f"the {d.tokenizer} vocabulary asked for (a small text "
                         f"may fill less of it); split lengths known once {where} is tokenized")
    from lmforge.tokenizers.char import CharTokenizer, default_char_specials

    if d.path is None:
        from lmforge.corpus import builtin_corpus
        from lmforge.data.inputs import text_cut

        text = builtin_corpus()
        cut = text_cut(text, d.val_fraction)
        return DataFacts(CharTokenizer.train(text).vocab_size, f"the characters of {where}", cut, len(text) - cut)
    from lmforge.data.training import inputs_of

    inputs = inputs_of(cfg)
    train = sum(len(t) for t in inputs.texts("train"))
    val = sum(len(t) for t in inputs.texts("val"))
    specials = default_char_specials() if inputs.documents else None
    vocab = CharTokenizer.train(inputs.texts(), specials=specials).vocab_size
    note = " (documents add one EOS each)" if inputs.documents else ""
    return DataFacts(vocab, f"the characters of {where}{note}", train, val)


def _split_tokens(split: dict) -> int:
    return sum(shard["tokens"] for shard in split["shards"])


def for_run(run_dir: Path) -> tuple[Config, DataFacts]:
    """A run directory's config and tokenizer, its splits' lengths and its measured speed from metrics.jsonl."""
    from lmforge.tokenizers import load_tokenizer
    from lmforge.training.run_dir import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE

    if not (run_dir / CONFIG_FILE).is_file() or not (run_dir / TOKENIZER_FILE).is_file():
        raise LmforgeError(f"'{run_dir}' has no {CONFIG_FILE} and {TOKENIZER_FILE}, so it is not a run directory; "
                           "pass a folder written by `lmforge train`, or --preset NAME / --config FILE")
    cfg = Config.from_file(run_dir / CONFIG_FILE)
    tokenizer = load_tokenizer(run_dir / TOKENIZER_FILE)
    facts = DataFacts(tokenizer.vocab_size, f"the {tokenizer.kind} tokenizer of {run_dir}")
    speeds = []
    metrics = run_dir / "metrics.jsonl"
    for line in metrics.read_text(encoding="utf-8").splitlines() if metrics.is_file() else []:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if record.get("event") in ("start", "resume"):
            facts.train_tokens, facts.val_tokens = record.get("train_tokens"), record.get("val_tokens")
        elif record.get("event") == "train" and record.get("tokens_per_s"):
            speeds.append(record["tokens_per_s"])
    if speeds:
        facts.train_tok_s = sorted(speeds)[len(speeds) // 2]  # the median: the first window pays for warm-up
    if (run_dir / MODEL_FILE).is_file():
        facts.weights = run_dir / MODEL_FILE
    return cfg, facts
