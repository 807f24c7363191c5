"""Sweeps: every point under one budget, a table and plots, and a restart that reruns only unfinished points."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lmforge.cli import main
from lmforge.errors import LmforgeError
from lmforge.experiments.scaling import fit_power_law
from lmforge.experiments.sweep import Point, compute_budget, parse_params, plan
from lmforge.training.checkpoint import list_checkpoints


def sweep_args(data, out, *extra):
    return ["sweep", "--preset", "tiny", "--data", str(data), "--param", "model.n_embd=16,32,48", "--tokens", "2560",
            "--out", str(out), "--train.eval_interval", "5", "--sample.max_new_tokens", "0", *extra]


def rows_of(out):
    with (out / "sweep.csv").open() as f:
        return list(csv.DictReader(f))


def test_sweep_runs_each_point_under_one_budget_and_reruns_only_unfinished(small_text_file, tmp_path):
    out = tmp_path / "sweep"
    assert main(sweep_args(small_text_file, out)) == 0
    rows = rows_of(out)
    assert [r["model.n_embd"] for r in rows] == ["16", "32", "48"]
    assert {r["tokens_seen"] for r in rows} == {"2560"}  # 10 steps of 8 × 32 each: the same budget
    assert int(rows[0]["params"]) < int(rows[1]["params"]) < int(rows[2]["params"])
    assert all(float(r["peak_rss_mb"]) > 50 for r in rows)
    assert (out / "sweep.png").stat().st_size > 5000 and "| model.n_embd |" in (out / "sweep.md").read_text()

    points = sorted((out / "points").glob("n_embd=*/"))
    first = (points[0] / "metrics.jsonl").read_bytes()
    # the second point as a kill leaves it: no end record, its newest checkpoint not yet written
    lines = (points[1] / "metrics.jsonl").read_text().splitlines()
    (points[1] / "metrics.jsonl").write_text("\n".join(l for l in lines if '"event": "end"' not in l) + "\n")
    newest = list_checkpoints(points[1])[-1][1]
    for f in newest.parent.glob(newest.stem + ".*"):
        f.unlink()
    # the third as if never started
    import shutil
    shutil.rmtree(points[2])

    assert main(sweep_args(small_text_file, out)) == 0
    assert (points[0] / "metrics.jsonl").read_bytes() == first  # done: not rerun
    events = [json.loads(l)["event"] for l in (points[1] / "metrics.jsonl").read_text().splitlines()]
    assert "resume" in events and events[-1] == "end"
    assert [r["tokens_seen"] for r in rows_of(out)] == ["2560"] * 3


@pytest.mark.slow
def test_a_killed_sweep_continues(small_text_file, tmp_path):
    out = tmp_path / "sweep"
    argv = [sys.executable, "-m", "lmforge", *sweep_args(small_text_file, out)]
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first = out / "points" / "n_embd=16" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (first.is_file() and '"event": "end"' in first.read_text()):
        time.sleep(0.2)
    time.sleep(1.0)  # into the second point
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    done = first.read_bytes()
    assert subprocess.run(argv, capture_output=True).returncode == 0
    assert first.read_bytes() == done
    assert len(rows_of(out)) == 3


def test_power_law_fit_recovers_a_known_law():
    n = np.geomspace(1e3, 1e6, 6)
    law = fit_power_law(list(n), list(1.5 + 30.0 * n ** -0.5))
    assert law.alpha == pytest.approx(0.5, abs=0.02) and law.E == pytest.approx(1.5, abs=0.02) and law.rmse < 1e-3
    with pytest.raises(LmforgeError, match="at least 3 points"):
        fit_power_law([1.0, 2.0], [3.0, 2.0])


def test_power_law_fit_is_exact_on_exact_points():
    """On points of an exact law the refined grid of E and the line fit recover E, A and α closely, well inside the
    coarse grid's step of about 0.004 in E. (Only the coarse grid passed the test above.)"""
    n = np.geomspace(1e3, 1e6, 6)
    law = fit_power_law(list(n), list(1.5 + 30.0 * n ** -0.5))
    assert (law.E, law.A, law.alpha) == pytest.approx((1.5, 30.0, 0.5), rel=1e-3) and law.rmse < 1e-5
    for sizes in ([1.0, 1.0, 2.0], [-1.0, 2.0, 3.0], [0.0, 2.0, 3.0]):  # 2 distinct sizes; not positive
        with pytest.raises(LmforgeError, match="distinct positive sizes"):
            fit_power_law(sizes, [3.0, 2.0, 1.5])


# one block of width 8 (norms 2 · 8, qkv 192, proj 64, fc 256, mlp.proj 256) and the final norm: N = 792, the
# embeddings, learned positions and untied head left out
SMALL = {"model.family": "transformer", "model.n_layer": 1, "model.n_embd": 8, "model.n_head": 2,
         "model.block_size": 4, "model.bias": False, "model.positions": "learned", "model.norm": "layernorm",
         "model.mlp": "gelu", "model.qk_norm": False, "model.tie_weights": False, "train.batch_size": 8}


def test_a_compute_budget_buys_c_over_6n_tokens(tmp_path):
    """C = 6 · 792 · 320 FLOPs buy 320 tokens: 10 steps of 8 × 4; one FLOP more needs an 11th step."""
    from lmforge.config import Config

    cfg = Config.from_dict({}).updated(SMALL)
    points = [Point({}, tmp_path / "a", cfg), Point({}, tmp_path / "b", cfg)]
    compute_budget(points[:1], 6 * 792 * 320)
    compute_budget(points[1:], 6 * 792 * 320 + 1)
    assert points[0].result["non_embedding_params"] == 792
    assert [p.config.train.max_steps for p in points] == [10, 11]


def test_a_plan_has_every_point_of_the_grid_with_the_token_budget(tmp_path):
    """The product of the values, in order, each named by its values, and max_steps = ceil(tokens / (8 × 4))."""
    grid = parse_params(["model.n_embd=8,16,24,32", "train.lr=0.1,0.2"])
    points = plan([("test", SMALL)], grid, tmp_path, tokens=330)
    assert [p.name for p in points] == [f"n_embd={c}_lr={lr}" for c in (8, 16, 24, 32) for lr in ("0.1", "0.2")]
    assert [(p.config.model.n_embd, p.config.train.lr) for p in points][-1] == (32, 0.2)
    assert {p.config.train.max_steps for p in points} == {11} and {p.config.train.max_seconds for p in points} == {0}


def test_scaling_sweep_writes_a_fit(small_text_file, tmp_path, capsys):
    out = tmp_path / "scaling"
    assert main(["sweep", "--scaling", "--preset", "tiny", "--data", str(small_text_file), "--param",
                 "model.n_embd=16,32,64", "--flops", "3e8", "--out", str(out), "--sample.max_new_tokens", "0"]) == 0
    rows = rows_of(out)
    assert int(rows[0]["tokens_seen"]) > int(rows[2]["tokens_seen"])  # the same compute: smaller models see more
    fit = json.loads((out / "scaling.json").read_text())
    losses = [float(r["val_loss"]) for r in rows]
    assert fit["N"]["rmse"] < 0.5 * (max(losses) - min(losses))  # the curve follows the points
    assert (out / "scaling.png").is_file() and "prediction at this compute" in capsys.readouterr().out


def test_bad_sweeps_are_refused(small_text_file, tmp_path, capsys):
    with pytest.raises(LmforgeError, match="needs KEY=V1,V2"):
        parse_params(["model.n_embd"])
    with pytest.raises(LmforgeError, match="unknown config key 'model.n_emb'.*model.n_embd"):
        parse_params(["model.n_emb=1,2"])
    assert main(["sweep", "--param", "model.n_embd=16,32", "--out", str(tmp_path / "o")]) == 2
    assert "one budget" in capsys.readouterr().err
    assert main(["sweep", "--param", "model.n_embd=16,32", "--tokens", "100", "--flops", "1e9",
                 "--out", str(tmp_path / "o")]) == 2
    assert "--flops is the budget of --scaling" in capsys.readouterr().err
    for budget in (["--tokens", "-100"], ["--scaling", "--flops", "nan"], ["--scaling", "--flops=-1e9"],
                   ["--scaling", "--flops", "inf"]):
        assert main(["sweep", "--preset", "tiny", "--data", str(small_text_file), "--param", "model.n_embd=16,32",
                     *budget, "--out", str(tmp_path / "o")]) == 2
        assert "--tokens and --flops must be positive, finite numbers" in capsys.readouterr().err
    assert main(["sweep", "--preset", "tiny", "--data", str(tmp_path / "missing.txt"), "--param", "model.n_embd=16,32",
                 "--tokens", "100", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err  # one line, before any point starts
    assert len(err.strip().splitlines()) == 1 and "missing.txt' does not exist" in err, err
    assert not (tmp_path / "o").exists()


def test_a_row_reports_the_whole_val_split_when_evals_scored_a_sample(tmp_path):
    """With train.eval_tokens, the best eval's loss is a sample's; the row's loss and bpb are both the whole split's."""
    from lmforge.experiments.sweep import Point, collect

    run = tmp_path / "point"
    run.mkdir()
    records = [{"event": "start", "params": 10, "elapsed_s": 0.1},
               {"event": "train", "step": 5, "tokens_seen": 640, "elapsed_s": 1.0},
               {"event": "eval", "step": 5, "val_loss": 1.5, "val_bpb": 2.2, "best": True},
               {"event": "end", "step": 5, "best_val_loss": 1.5,
                "whole_val": {"step": 5, "val_loss": 1.7, "val_bpb": 2.5}}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    row = collect(Point({"model.n_embd": "8"}, run, None))
    assert (row["val_loss"], row["val_bpb"]) == (1.7, 2.5)
