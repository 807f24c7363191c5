"""Shared fixtures: small texts and a tiny trained run, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# The test models are tiny: a second thread buys nothing, and on a busy shared machine an OpenMP
# thread that waits for its sibling spins, making each step many times slower.
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SHAKESPEARE = SHARED_DATA / "tinyshakespeare.txt"

SMALL_TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n\n"
) * 40


@pytest.fixture(scope="session")
def small_text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "small.txt"
    path.write_text(SMALL_TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, small_text_file) -> Path:
    """A run directory trained with the `tiny` preset for a few steps."""
    from lmforge.cli import main

    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["train", "--preset", "tiny", "--data", str(small_text_file), "--out", str(out),
                 "--train.max_steps", "10", "--train.eval_interval", "5"]) == 0
    return out


@pytest.fixture(scope="session")
def family_runs(tmp_path_factory, small_text_file, tiny_run) -> dict[str, Path]:
    """One tiny run directory per model family: {"transformer": ..., "rnn": ..., "ngram": ...}."""
    from lmforge.cli import main

    runs = {"transformer": tiny_run}
    for family, extra in (("rnn", ["--model.n_embd", "32"]), ("ngram", ["--model.ngram_order", "3"])):
        out = tmp_path_factory.mktemp("runs") / family
        assert main(["train", "--preset", "tiny", "--data", str(small_text_file), "--out", str(out),
                     "--model.family", family, *extra, "--train.max_steps", "10", "--train.eval_interval", "5"]) == 0
        runs[family] = out
    return runs


@pytest.fixture
def one_thread():
    """Run a test of many tiny tensor ops on one thread: on a busy two-core machine, waiting for a
    second thread makes each op hundreds of times slower than doing it alone."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
