"""Seconds from process start to the first eval whose val loss reaches a target.

Runs `lmforge train` as a fresh process (so `elapsed_s` includes interpreter start,
imports and data loading) on a preset, then reads the run's metrics.jsonl and
prints a table of every eval and the time to target.

    python benchmarks/time_to_quality.py --preset shakespeare-char-cpu \
        --data ../shared/data/tinyshakespeare.txt --target 1.88
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="shakespeare-char-cpu")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/tinyshakespeare.txt"))
    parser.add_argument("--target", type=float, default=1.88, help="val loss to reach (nats/token)")
    parser.add_argument("--out", help="run directory (default: a temporary one)")
    parser.add_argument("overrides", nargs="*", help="extra `--section.key value` pairs, after --")
    args = parser.parse_args()

    out = Path(args.out or tempfile.mkdtemp(prefix="ttq-")) / "run"
    cmd = [sys.executable, "-m", "lmforge", "train", "--preset", args.preset, "--data", args.data, "--out", str(out),
           "--train.progress", "false", *args.overrides]
    print("$", " ".join(cmd), flush=True)
    start = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - start
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return done.returncode
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["event"] == "eval"]
    print(f"\n| step | elapsed_s | train_loss | val_loss | val_bpb |\n|---:|---:|---:|---:|---:|")
    for r in evals:
        print(f"| {r['step']} | {r['elapsed_s']:.1f} | {r['train_loss']:.4f} | {r['val_loss']:.4f} | {r['val_bpb']:.4f} |")
    hit = next((r for r in evals if r["val_loss"] <= args.target), None)
    best = min(evals, key=lambda r: r["val_loss"])
    print(f"\npreset {args.preset}: best val loss {best['val_loss']:.4f} at step {best['step']} "
          f"({best['elapsed_s']:.1f} s); process wall time {wall:.1f} s")
    if hit:
        print(f"first val loss <= {args.target}: {hit['val_loss']:.4f} at step {hit['step']}, "
              f"{hit['elapsed_s']:.1f} s after process start")
    else:
        print(f"val loss never reached {args.target}")
    return 0 if hit else 1


if __name__ == "__main__":
    raise SystemExit(main())
