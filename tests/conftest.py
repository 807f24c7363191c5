"""Shared fixtures: small texts and a tiny trained run, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# The test models are tiny: a second thread buys nothing, and on a busy shared machine an OpenMP
# thread that waits for its sibling spins, making each step many times slower.
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

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


# ---------------------------------------------------------------- skips in CI
# `scripts/test.sh --all` (what CI runs) sets LMFORGE_NO_SKIPS=1: then a test skipped for any reason
# but a missing GPU fails the run, so a test that silently stops running (a missing package, data
# that did not travel, a condition that never holds) is seen at once instead of passing for months.
GPU_WORDS = ("gpu", "cuda")
_skipped: list[tuple[str, str]] = []


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append((report.nodeid, reason))


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("LMFORGE_NO_SKIPS") != "1":
        return
    bad = [(node, reason) for node, reason in _skipped if not any(w in reason.lower() for w in GPU_WORDS)]
    if bad:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        reporter.write_line(f"\n{len(bad)} test(s) skipped for a reason other than a missing GPU; "
                            "CI counts each as a failure:", red=True)
        for node, reason in bad:
            reporter.write_line(f"  {node}: {reason}", red=True)
        session.exitstatus = 1
