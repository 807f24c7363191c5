"""Seconds from process start to the first eval whose val loss reaches a target.

Runs `lmforge train` as a fresh process (so `elapsed_s` includes interpreter start,
imports and data loading) on a preset, then reads the run's metrics.jsonl and
prints a table of every eval and the time to target.

    python benchmarks/time_to_quality.py --preset shakespeare-char-cpu \
        --data ../shared/data/tinyshakespeare.txt --target 1.88

Other benchmarks (gpu_suite.py) call `run_preset` and `print_report` themselves.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared/data/tinyshakespeare.txt"


def run_preset(preset: str, data: str | Path, target: float, overrides: Sequence[str] = (), out: str | Path | None = None,
               within_s: float | None = None, timeout_s: float | None = None,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    """Train `preset` on `data` in a fresh `python -m lmforge train` process and summarize its evals.

    `overrides` are extra `--section.key value` arguments. The child imports lmforge from this
    checkout's `src/` first, so the figure is this code's even where lmforge is not installed.
    Returns a dict: the command, `returncode`, `wall_s`, every eval (`step`, `elapsed_s`,
    `train_loss`, `val_loss`, `val_bpb`), the first eval at or below `target`
    (`time_to_target_s`, `step_at_target`, `val_at_target`; None when never reached), the best
    eval, and, with `within_s`, the best eval whose `elapsed_s` is at most `within_s`.
    A failed process leaves `error` (the end of its stderr) and whatever evals it logged.
    """
    run_dir = Path(out or tempfile.mkdtemp(prefix="ttq-")) / "run"
    cmd = train_command(preset, data, run_dir, overrides)
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), child_env.get("PYTHONPATH")) if p)
    result: dict[str, Any] = {"preset": preset, "target": target, "within_s": within_s, "command": cmd,
                              "run_dir": str(run_dir), "error": None}
    start = time.time()
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=child_env, timeout=timeout_s)
        result["returncode"] = done.returncode
        if done.returncode != 0:
            result["error"] = done.stderr.strip()[-2000:] or f"exit status {done.returncode}"
    except subprocess.TimeoutExpired:
        result["returncode"] = None
        result["error"] = f"lmforge train did not finish within {timeout_s:.0f} s and was stopped"
    result["wall_s"] = time.time() - start
    result.update(summarize(read_records(run_dir / "metrics.jsonl"), target, within_s))
    return result


def unigram_entropy(data: str | Path) -> float:
    """Nats per character of the text's own character frequencies: the loss of a model that learned
    nothing but how common each character is. A smoke run's target: a loop that does not train stays
    near ln(vocabulary), above it; a few real steps on a small text go well below it."""
    counts = collections.Counter(Path(data).read_text(encoding="utf-8"))
    total = sum(counts.values())
    return -sum(n / total * math.log(n / total) for n in counts.values())


def train_command(preset: str, data: str | Path, run_dir: Path, overrides: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-m", "lmforge", "train", "--preset", preset, "--data", str(data), "--out", str(run_dir),
            "--train.progress", "false", *overrides]


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def summarize(records: list[dict[str, Any]], target: float, within_s: float | None = None) -> dict[str, Any]:
    """The evals of a metrics.jsonl, the first to reach `target`, the best, and the best by `within_s`.

    Times count from process start (`elapsed_s`); `loop_to_target_s` from the run's `start` record."""
    keys = ("step", "elapsed_s", "train_loss", "val_loss", "val_bpb")
    evals = [{k: r.get(k) for k in keys} for r in records if r.get("event") == "eval"]
    end = next((r for r in reversed(records) if r.get("event") == "end"), {})
    start = next((r for r in records if r.get("event") == "start"), {})
    hit = next((r for r in evals if r["val_loss"] <= target), None)
    best = min(evals, key=lambda r: r["val_loss"], default=None)
    early = [r for r in evals if within_s is not None and r["elapsed_s"] <= within_s]
    best_within = min(early, key=lambda r: r["val_loss"], default=None)
    return {
        "evals": evals, "stop_reason": end.get("reason"), "reached": hit is not None,
        "time_to_target_s": hit and hit["elapsed_s"], "step_at_target": hit and hit["step"],
        "val_at_target": hit and hit["val_loss"],
        # the same from the loop's start (its evals included, start-up, data loading and model building not)
        "loop_to_target_s": hit["elapsed_s"] - start["elapsed_s"] if hit and "elapsed_s" in start else None,
        "best_val_loss": best and best["val_loss"], "best_step": best and best["step"],
        "best_elapsed_s": best and best["elapsed_s"],
        "best_within_val_loss": best_within and best_within["val_loss"],
        "best_within_step": best_within and best_within["step"],
        "best_within_elapsed_s": best_within and best_within["elapsed_s"],
    }


def print_report(result: dict[str, Any]) -> None:
    """A markdown table of the evals, then the time to target and the best val loss."""
    evals = result["evals"]
    if not evals:
        print("no eval was logged")
        return
    print("\n| step | elapsed_s | train_loss | val_loss | val_bpb |\n|---:|---:|---:|---:|---:|")
    for r in evals:
        print(f"| {r['step']} | {r['elapsed_s']:.1f} | {r['train_loss']:.4f} | {r['val_loss']:.4f} | {r['val_bpb']:.4f} |")
    target = result["target"]
    print(f"\npreset {result['preset']}: best val loss {result['best_val_loss']:.4f} at step {result['best_step']} "
          f"({result['best_elapsed_s']:.1f} s); process wall time {result['wall_s']:.1f} s")
    if result.get("within_s") is not None:
        if result["best_within_val_loss"] is None:
            print(f"no eval within {result['within_s']:g} s of process start")
        else:
            print(f"best val loss within {result['within_s']:g} s: {result['best_within_val_loss']:.4f} at step "
                  f"{result['best_within_step']} ({result['best_within_elapsed_s']:.1f} s)")
    if result["reached"]:
        loop = result.get("loop_to_target_s")
        print(f"first val loss <= {target:.4g}: {result['val_at_target']:.4f} at step {result['step_at_target']}, "
              f"{result['time_to_target_s']:.1f} s after process start"
              + (f" ({loop:.1f} s after the training loop's start)" if loop else ""))
    else:
        print(f"val loss never reached {target:.4g}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="shakespeare-char-cpu")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--target", type=float, default=1.88, help="val loss to reach (nats/token)")
    parser.add_argument("--within", type=float, help="also report the best val loss logged within this many seconds")
    parser.add_argument("--out", help="run directory (default: a temporary one)")
    parser.add_argument("overrides", nargs="*", help="extra `--section.key value` pairs, after --")
    args = parser.parse_args(argv)

    out = Path(args.out or tempfile.mkdtemp(prefix="ttq-"))
    print("$", " ".join(train_command(args.preset, args.data, out / "run", args.overrides)), flush=True)
    result = run_preset(args.preset, args.data, args.target, args.overrides, out=out, within_s=args.within)
    if result["error"]:
        print(result["error"], file=sys.stderr)
        return result["returncode"] or 1
    print_report(result)
    return 0 if result["reached"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
