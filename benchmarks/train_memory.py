"""Peak memory of `lmforge train --data FILE` on a large text file, against `prepare` + training on its output.

    python benchmarks/train_memory.py [--mb 72] [--tmp /tmp] [-- EXTRA TRAIN FLAGS]

Builds a text file of about --mb megabytes (the built-in corpus, repeated) in a
temporary folder, then runs three commands as child processes, a few training
steps each:

- `lmforge train --data FILE`                      (prepares into RUN_DIR/data on the way)
- `lmforge prepare --data FILE --tokenizer char`   (the same split: FILE's last 10% is val)
- `lmforge train --data PREPARED`

and prints each one's peak resident memory (the child's `ru_maxrss`, from
`resource.getrusage(RUSAGE_CHILDREN)` in a fresh wrapper process per command) and
wall time. Everything it wrote is deleted at the end. Training uses the `tiny`
preset for 2 steps with `--data.val_fraction 0.01` so the one eval at the end
stays short; the memory that matters is the data's, which the model does not change.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lmforge.corpus import builtin_corpus

WRAPPER = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)")
TRAIN = ["--preset", "tiny", "--train.max_steps", "2", "--train.eval_interval", "2", "--data.val_fraction", "0.01",
         "--sample.max_new_tokens", "0", "--train.tensorboard", "false"]


def build(path: Path, n_bytes: int) -> int:
    """A UTF-8 text file of about n_bytes: the built-in corpus, repeated; returns its size in characters."""
    text = builtin_corpus()
    copies = max(1, round(n_bytes / len(text.encode("utf-8"))))
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(text for _ in range(copies))
    return copies * len(text)


def peak(cmd: list[str]) -> tuple[float, float, str]:
    """(peak RSS in GB, wall seconds, its error line or "") of `cmd` run alone in a fresh wrapper process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, check=False)
    error = done.stderr.strip().splitlines()[-1] if done.returncode else ""
    return int(done.stdout.strip().splitlines()[-1]) * 1024 / 1e9, time.perf_counter() - start, error  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=72.0, help="size of the text file (default 72)")
    ap.add_argument("--tmp", default=None, help="where to build it (default: the system's temporary folder)")
    ap.add_argument("extra", nargs="*", help="more `lmforge train` flags, after --")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lmforge-train-memory-", dir=args.tmp))
    try:
        text = work / "corpus.txt"
        chars = build(text, int(args.mb * 1e6))
        size = text.stat().st_size
        lmforge = [sys.executable, "-m", "lmforge"]
        rows = [
            ("train --data FILE", [*lmforge, "train", "--data", str(text), "--out", str(work / "run1"), *TRAIN,
                                   *args.extra]),
            ("prepare --data FILE", [*lmforge, "prepare", "--data", str(text), "--tokenizer", "char",
                                     "--val-fraction", "0.01", "--out", str(work / "prep"), "--no-progress"]),
            ("train --data PREPARED", [*lmforge, "train", "--data", str(work / "prep"), "--out", str(work / "run2"),
                                       *TRAIN, *args.extra]),
        ]
        print(f"text file: {size / 1e6:.1f} MB, {chars:,} characters")
        print(f"{'command':<24s} {'peak RSS GB':>12s} {'bytes/char':>11s} {'wall s':>7s}")
        for name, cmd in rows:
            gb, wall, error = peak(cmd)
            print(f"{name:<24s} {gb:12.3f} {gb * 1e9 / chars:11.2f} {wall:7.1f}  {error}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
