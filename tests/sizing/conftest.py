from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_ngram_run(tmp_path_factory, small_text_file):
    """A fitted 3-gram run: (run dir, its model config, vocabulary, train tokens)."""
    import json

    from lmforge.cli import main
    from lmforge.config import Config

    out = tmp_path_factory.mktemp("runs") / "ngram"
    assert main(["train", "--data", str(small_text_file), "--out", str(out), "--model.family", "ngram",
                 "--model.ngram_order", "3", "--train.progress", "false", "--train.tensorboard", "false"]) == 0
    start = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    return out, Config.from_file(out / "config.yaml").model, start["vocab_size"], start["train_tokens"]
