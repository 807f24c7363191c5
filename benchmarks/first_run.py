"""The first run (`scripts/demo.sh`): the default preset against the one it replaced, on the built-in corpus.

Each round trains both as fresh `lmforge train` processes, one after the other, or at
the same moment with `--together` (on a machine busy with other jobs, where only the
ratio of their seconds means much). For each it prints:

- training seconds: the loop, its evals included, from the `start` record to the last
  `train` record of metrics.jsonl (data loading and the final whole-split eval excluded);
- the whole process's wall and CPU seconds (CPU seconds, with `OMP_NUM_THREADS=1`, are
  the figure to compare on a busy machine);
- the best model's bits per byte on the whole val split (the `end` record's `whole_val`,
  else the best eval), how many evals, and the verdict `lmforge report` draws;
- how much of the final sample reads as words: the share of its words (letters only) that
  occur in the built-in corpus.

The losses are seeded, so they repeat to the last digit on the same machine; only the
seconds vary with the load.

    python benchmarks/first_run.py                 # one round, one after the other
    python benchmarks/first_run.py --rounds 2 --together
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from lmforge.corpus import load_corpus  # noqa: E402
from lmforge.evaluation.verdict import diagnose  # noqa: E402
from time_to_quality import read_records  # noqa: E402

# The default preset as it was before issue 13 (commit 3bb8638), as overrides of any default preset:
# every key either preset sets.
OLD = {"model.n_layer": 4, "model.n_head": 4, "model.n_embd": 128, "model.block_size": 64, "model.positions": "learned",
       "model.mlp": "gelu", "train.batch_size": 32, "train.max_steps": 1000, "train.optimizer": "adamw",
       "train.lr": 3e-3, "train.min_lr": 3e-4, "train.warmup_steps": 50, "train.eval_interval": 1000,
       "train.eval_batch_size": 128, "train.eval_tokens": 0, "train.eval_train_tokens": 65536,
       "train.max_seconds": 0, "sample.prompt": "Fellow-Citizens", "sample.max_new_tokens": 300,
       "sample.temperature": 0.8}
WORD = re.compile(r"[A-Za-z]+")


def command(run_dir: Path, overrides: dict[str, Any]) -> list[str]:
    flags = [part for key, value in overrides.items() for part in (f"--{key}", str(value))]
    return [sys.executable, "-m", "lmforge", "train", "--out", str(run_dir), "--train.progress", "false", *flags]


def start(run_dir: Path, overrides: dict[str, Any]) -> tuple[subprocess.Popen, float]:
    """Start `lmforge train`; its stdout and stderr go to files beside the run, so `finish` can reap it itself."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)}
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{run_dir}.out", "w") as out, open(f"{run_dir}.err", "w") as err:
        proc = subprocess.Popen(command(run_dir, overrides), stdout=out, stderr=err, env=env)
    return proc, time.perf_counter()


def finish(proc: subprocess.Popen, began: float, run_dir: Path, words: set[str]) -> dict[str, Any]:
    """Wait for the run (its CPU seconds from wait4: robust to other jobs where wall seconds are not) and sum it up."""
    _, status, usage = os.wait4(proc.pid, 0)
    wall, cpu = time.perf_counter() - began, usage.ru_utime + usage.ru_stime
    out, err = Path(f"{run_dir}.out").read_text(), Path(f"{run_dir}.err").read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"lmforge train failed ({run_dir}):\n{err[-2000:]}")
    records = read_records(run_dir / "metrics.jsonl")
    start_s = next(r["elapsed_s"] for r in records if r["event"] == "start")
    last_train = max((r for r in records if r["event"] == "train"), key=lambda r: r["step"])
    end = next(r for r in reversed(records) if r["event"] == "end")
    evals = [r for r in records if r["event"] == "eval"]
    best = end.get("whole_val") or min(evals, key=lambda r: r["val_loss"])
    sample = out.split("--- sample ---\n", 1)[-1]
    sample_words = WORD.findall(sample)
    verdict = diagnose(records)
    return {"steps": end["step"], "train_s": last_train["elapsed_s"] - start_s, "wall_s": wall, "cpu_s": cpu,
            "evals": len(evals),
            "val_loss": best["val_loss"], "val_bpb": best["val_bpb"], "verdict": verdict.label,
            "evidence": verdict.evidence[0] if verdict.evidence else "",
            "real_words": sum(w.lower() in words for w in sample_words) / max(len(sample_words), 1),
            "sample": sample.strip()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--together", action="store_true", help="start both runs at once (a busy machine: read the ratio)")
    parser.add_argument("--out", help="folder for the runs (default: a temporary one)")
    args = parser.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="first-run-"))
    text, _ = load_corpus(None)
    words = {w.lower() for w in WORD.findall(text)}
    recipes = {"default preset": {}, "old default (3bb8638)": OLD}
    print(f"runs in {out}; {os.cpu_count()} CPUs", flush=True)
    print("| round | recipe | steps | training s | process s | process CPU s | evals | val bits/byte (whole split) | "
          "val loss | verdict | sample words that are real |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    results = []
    for round_ in range(1, args.rounds + 1):
        dirs = {name: out / f"{i}-round{round_}" for i, name in enumerate(recipes)}
        if args.together:
            started = {name: start(dirs[name], recipes[name]) for name in recipes}
            done = {name: finish(*started[name], dirs[name], words) for name in recipes}
        else:
            done = {name: finish(*start(dirs[name], recipes[name]), dirs[name], words) for name in recipes}
        for name, r in done.items():
            results.append((round_, name, r))
            print(f"| {round_} | {name} | {r['steps']} | {r['train_s']:.1f} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
                  f"{r['evals']} | "
                  f"{r['val_bpb']:.4f} | {r['val_loss']:.4f} | {r['verdict']} | {r['real_words']:.0%} |", flush=True)
        new, old = done["default preset"], done["old default (3bb8638)"]
        print(f"round {round_}: new / old: training time {new['train_s'] / old['train_s']:.2f}, "
              f"process CPU time {new['cpu_s'] / old['cpu_s']:.2f}", flush=True)
    for round_, name, r in results:
        print(f"\nround {round_}, {name}: {r['evidence']}\n{r['sample']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
