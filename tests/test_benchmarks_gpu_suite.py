"""benchmarks/gpu_suite.py: its figures' arithmetic, the memory part on a CPU, and the whole suite on a CPU with tiny
shapes."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_benchmarks_cpu_suite import unigram_entropy

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    return load_path(name, BENCHMARKS / f"{name}.py")


def load_path(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_throughput_is_the_median_step_and_mfu_against_the_peak():
    suite = load("gpu_suite")
    figures = suite.throughput([0.3, 0.1, 0.2, 5.0], tokens_per_step=1000, flops_per_token=1e6, peak=1e10)
    assert figures["ms_per_step"] == pytest.approx(250.0)  # the median ignores one slow step
    assert figures["tokens_per_s"] == pytest.approx(4000.0)
    assert figures["mfu"] == pytest.approx(4000 * 1e6 / 1e10)
    assert suite.throughput([0.5], 100, 1e6, None)["mfu"] is None  # a CPU has no peak figure
    with pytest.raises(ValueError):
        suite.throughput([], 100, 1e6, 1e12)


def test_h200_peak_comes_from_lmforges_table():
    import torch

    from lmforge.training.flops import table_peak

    assert table_peak("NVIDIA H200", torch.bfloat16, tf32=True) == 989e12


def test_time_to_quality_summary_finds_the_first_hit_and_the_best_in_time():
    ttq = load("time_to_quality")
    records = [{"event": "start", "elapsed_s": 1.0}]
    for step, elapsed, val in [(250, 10.0, 1.60), (500, 19.0, 1.46), (750, 40.0, 1.41), (1000, 70.0, 1.39)]:
        records.append({"event": "eval", "step": step, "elapsed_s": elapsed, "train_loss": val - 0.2, "val_loss": val,
                        "val_bpb": val / math.log(2)})
    records.append({"event": "end", "reason": "max_seconds"})
    summary = ttq.summarize(records, target=1.47, within_s=60)
    assert (summary["time_to_target_s"], summary["step_at_target"], summary["val_at_target"]) == (19.0, 500, 1.46)
    assert summary["loop_to_target_s"] == 18.0  # from the start record, which came 1 s after the process started
    assert (summary["best_val_loss"], summary["best_step"]) == (1.39, 1000)
    assert (summary["best_within_val_loss"], summary["best_within_step"]) == (1.41, 750)
    assert summary["stop_reason"] == "max_seconds" and len(summary["evals"]) == 4
    missed = ttq.summarize(records, target=1.0)
    assert not missed["reached"] and missed["time_to_target_s"] is None and missed["best_within_val_loss"] is None
    assert missed["loop_to_target_s"] is None


def test_memory_part_on_cpu_gives_lmforge_sizes_estimate_for_the_shapes_of_tests_sizing(tmp_path):
    """Part (d)'s CPU smoke: the two shapes tests/sizing measures, trained eagerly in float32; each row's estimate is
    `memory_of` for the config trained (a row sized for another config, vocabulary or precision would differ); the
    activations shape is mostly activations and the weights shape mostly not; nothing is measured on a CPU."""
    from lmforge.config import Config
    from lmforge.sizing import memory_of

    sizing_shapes = load_path("sizing_test_memory", BENCHMARKS.parent / "tests/sizing/test_memory.py").SHAPES
    out = tmp_path / "suite.json"
    cmd = [sys.executable, str(BENCHMARKS / "gpu_suite.py"), "--parts", "d", "--smoke", "--device", "cpu",
           "--threads", "1", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert ("| shape | mode | dtype | params | activations share | estimate MB | measured MB | ratio | within 25% |"
            in done.stdout)
    part = json.loads(out.read_text())["parts"]["d"]
    assert part["status"] == "ok"
    rows = part["rows"]
    assert [(r["shape"], r["compiled"], r["dtype"]) for r in rows] == [("activations", False, "float32"),
                                                                      ("weights", False, "float32")]
    for r in rows:
        values, vocab = sizing_shapes[r["shape"]]
        assert r["values"] == values and r["vocab_size"] == vocab
        assert r["estimate"] == memory_of(Config.from_dict({}).updated({"train.device": "cpu", **values}), vocab).total
        assert (r["measured"], r["ratio"], r["within_25"]) == (None, None, None)
        assert (f"| {r['shape']} | eager | float32 | {r['params']:,} | {r['activations_share']:.0%} | "
                f"{r['estimate'] / 2**20:,.1f} | not measured on cpu | — | — |") in done.stdout
    assert rows[0]["activations_share"] > 0.5 > rows[1]["activations_share"]


@pytest.mark.slow
def test_smoke_suite_on_cpu_writes_positive_figures_for_every_part(tmp_path, small_text_file):
    out = tmp_path / "suite.json"
    # --compile true with the eager backend: dynamo traces both models (the path an H200 compiles) in seconds
    cmd = [sys.executable, str(BENCHMARKS / "gpu_suite.py"), "--smoke", "--device", "cpu", "--threads", "1",
           "--compile", "true", "--compile-backend", "eager", "--data", str(small_text_file), "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "## (a) training throughput" in done.stdout and "| model | mode | batch |" in done.stdout
    doc = json.loads(out.read_text())
    assert doc["meta"]["torch"] and doc["meta"]["commit"] and doc["meta"]["smoke"] is True
    parts = doc["parts"]
    assert {key: parts[key]["status"] for key in "abcd"} == {"a": "ok", "b": "ok", "c": "ok", "d": "ok"}

    rows = parts["a"]["rows"]
    have_hf = importlib.util.find_spec("transformers") is not None
    expected = {("lmforge", False), ("lmforge", True)} | ({("transformers", False), ("transformers", True)} if have_hf else set())
    assert {(r["model"], r["compiled"]) for r in rows} == expected
    assert {r["batch"] for r in rows} == {2, 4}
    for r in rows:
        assert r["ms_per_step"] > 0 and r["tokens_per_s"] > 0 and math.isfinite(r["loss"]) and r["mfu"] is None
    assert parts["a"]["flops_per_token"] > 0

    b = parts["b"]
    # the smoke target is the text's unigram entropy: 60 steps beat it, a loop that does not learn stays near ln(33)
    assert b["target"] == pytest.approx(unigram_entropy(small_text_file.read_text()))
    assert [e["step"] for e in b["evals"]] == [30, 60] and b["reached"] and 0 < b["time_to_target_s"] <= b["wall_s"]
    assert b["best_val_loss"] < b["target"] and b["best_within_val_loss"] == b["best_val_loss"]

    c = parts["c"]["rows"]
    assert [r["batch"] for r in c] == [1, 8]
    for r in c:
        assert r["lmforge_tok_s"] > 0
        if have_hf:
            assert r["transformers_tok_s"] > 0 and r["tokens_agree"] == r["new_tokens"]
