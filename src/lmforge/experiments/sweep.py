"""`lmforge sweep`: train every point of a grid under the same budget, resumably.

Each point is an ordinary `lmforge train` run in `OUT/points/NAME`, run as its own
process (one point's crash or memory does not touch the others; its peak memory is the
process's). A point is done when its metrics.jsonl ends with an `end` record of a normal
stop. Restarted, a sweep skips the done points, resumes an unfinished one from its newest
checkpoint, and starts over one that never reached a checkpoint, so a sweep killed midway
loses at most one eval interval of one point.

Budgets: `--tokens N` gives every point the same number of training tokens (its max_steps
from its own batch and context), exact across resumes; `--budget SECONDS` the same wall time
of the training loop (a resumed point gets what its first attempt left).
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.config import Config, all_keys
from lmforge.errors import LmforgeError, did_you_mean

NORMAL_STOPS = ("max_steps", "max_seconds", "early_stop", "counted")


def parse_params(specs: list[str]) -> dict[str, list[str]]:
    """`--param model.n_embd=64,128` → {"model.n_embd": ["64", "128"]}, keys checked against the config."""
    grid: dict[str, list[str]] = {}
    for spec in specs:
        key, eq, values = spec.partition("=")
        if not eq or not values.strip(","):
            raise LmforgeError(f"--param '{spec}' needs KEY=V1,V2,..., e.g. --param model.n_embd=64,128")
        if key not in all_keys():
            raise LmforgeError(f"--param: unknown config key '{key}'{did_you_mean(key, all_keys())}")
        grid[key] = [v for v in values.split(",") if v]
    if not grid:
        raise LmforgeError("a sweep needs at least one --param KEY=V1,V2,...")
    return grid


@dataclass
class Point:
    values: dict[str, str]
    run_dir: Path
    config: Config
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run_dir.name


def plan(base: list[tuple[str, dict]], grid: dict[str, list[str]], out: Path, tokens: int = 0,
         seconds: float = 0) -> list[Point]:
    """Every point of the grid with its validated config (the base layers, then the point, then the budget)."""
    if bool(tokens) == bool(seconds):
        raise LmforgeError("give the sweep one budget: --tokens N (the same training tokens for every point) or "
                           "--budget SECONDS")
    points = []
    for combo in itertools.product(*grid.values()):
        values = dict(zip(grid, combo))
        cfg = Config.from_layers(*base, ("--param", values))
        if tokens:
            per_step = cfg.train.batch_size * cfg.model.block_size
            budget = {"train.max_steps": max(1, math.ceil(tokens / per_step)), "train.max_seconds": 0}
        else:
            budget = {"train.max_seconds": seconds}
        cfg = cfg.updated(budget)
        name = "_".join(f"{k.split('.')[-1]}={v}" for k, v in values.items())
        points.append(Point(values, out / "points" / name, cfg))
    return points


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pass  # a line cut off by a kill: the resumed run truncates it too
    return records


def status(point: Point) -> str:
    """done | resume (a checkpoint to continue from) | new."""
    from lmforge.training.checkpoint import list_checkpoints

    records = read_records(point.run_dir)
    if records and records[-1].get("event") == "end" and records[-1].get("reason") in NORMAL_STOPS:
        return "done"
    return "resume" if list_checkpoints(point.run_dir) else "new"


def run_point(point: Point, seconds: float, log) -> None:
    """Train (or resume) one point in its own process; its peak memory (max RSS) goes into `peak_rss.json`."""
    state = status(point)
    if state == "done":
        return
    if state == "new":
        shutil.rmtree(point.run_dir, ignore_errors=True)  # a start that never reached a checkpoint
        point.run_dir.mkdir(parents=True)
        point.config.save(point.run_dir.parent / f"{point.name}.yaml")
        argv = ["train", "--config", str(point.run_dir.parent / f"{point.name}.yaml"), "--out", str(point.run_dir)]
    else:
        argv = ["train", "--resume", str(point.run_dir)]
        if seconds:  # the budget its first attempt left
            used = max((r.get("elapsed_s", 0) for r in read_records(point.run_dir) if r.get("event") == "train"),
                       default=0)
            argv += ["--train.max_seconds", str(max(seconds - used, 1.0))]
    log(f"{'resuming' if state == 'resume' else 'training'} {point.name}")
    peak_file = point.run_dir / "peak_rss.json"
    previous = _read_json(peak_file).get("peak_rss_mb", 0)
    child = subprocess.run([sys.executable, "-m", "lmforge.experiments.sweep", str(peak_file), *argv,
                            "--train.progress", "false"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if child.returncode != 0:
        last = (child.stderr or "").strip().splitlines()[-1:] or ["(no message)"]
        raise LmforgeError(f"point {point.name} failed ({last[0]}); fix it and rerun the sweep (finished points are kept)")
    peak = _read_json(peak_file).get("peak_rss_mb", 0)
    peak_file.write_text(json.dumps({"peak_rss_mb": max(previous, peak)}) + "\n")  # the larger of both attempts


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def collect(point: Point) -> dict[str, Any]:
    """One row of the sweep table from a done point's records."""
    records = read_records(point.run_dir)
    start = next(r for r in records if r["event"] in ("start", "resume"))
    end = records[-1]
    best = end.get("whole_val") or next((r for r in reversed(records) if r["event"] == "eval" and r.get("best")), {})
    trains = [r for r in records if r["event"] == "train"]
    return {**point.values, "params": start.get("params"), "tokens_seen": trains[-1]["tokens_seen"] if trains else 0,
            "seconds": round(trains[-1]["elapsed_s"], 1) if trains else 0, "steps": end.get("step"),
            # the best model's loss on the whole val split when evals scored a sample (`whole_val`), as its bpb is
            "val_loss": best.get("val_loss", end.get("best_val_loss")), "val_bpb": best.get("val_bpb"),
            "peak_rss_mb": round(_read_json(point.run_dir / "peak_rss.json").get("peak_rss_mb", 0), 1)}


def non_embedding_params(cfg: Config) -> int:
    """Parameters outside the token and position embeddings and the output head (Kaplan et al.'s N): what compute
    per token scales with, independent of the vocabulary."""
    from torch import nn

    from lmforge.models import build_model

    model = build_model(cfg.model, 1)  # one token: the vocabulary's share vanishes
    skip = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    head = model.output_head() if hasattr(model, "output_head") else None
    skip |= {id(p) for p in head.parameters()} if head is not None else set()
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def compute_budget(points: list[Point], flops: float) -> None:
    """Give each point the tokens D = C / (6 N) that a training budget of C FLOPs buys a model of N parameters."""
    for p in points:
        n = non_embedding_params(p.config)
        steps = max(1, math.ceil(flops / (6 * n) / (p.config.train.batch_size * p.config.model.block_size)))
        p.config = p.config.updated({"train.max_steps": steps, "train.max_seconds": 0})
        p.result["non_embedding_params"] = n


def run_sweep(points: list[Point], out: Path, seconds: float = 0, log=print) -> list[dict[str, Any]]:
    """Run every unfinished point, then write sweep.csv, sweep.md and sweep.png; the table's rows."""
    from lmforge.experiments.sweep_report import draw, write_table

    out.mkdir(parents=True, exist_ok=True)
    for i, point in enumerate(points, 1):
        log(f"[{i}/{len(points)}] {point.name}: {status(point)}")
        run_point(point, seconds, log)
    rows = [{**collect(p), **p.result} for p in points]
    keys = list(points[0].values)
    write_table(rows, keys, out)
    curves = {p.name: [r for r in read_records(p.run_dir) if r["event"] == "eval"] for p in points}
    draw(rows, curves, keys[0], out)
    return rows


def _measured_main(argv: list[str]) -> int:
    """`python -m lmforge.experiments.sweep PEAK_FILE lmforge-args...`: run lmforge, then write this process's peak
    resident memory (what the point cost, interpreter included) to PEAK_FILE."""
    import resource

    from lmforge.cli import main

    status = main(argv[1:])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    Path(argv[0]).write_text(json.dumps({"peak_rss_mb": peak_mb}) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(_measured_main(sys.argv[1:]))
