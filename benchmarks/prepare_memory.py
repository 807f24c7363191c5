"""`lmforge prepare` on a large generated corpus: peak memory and MB/s.

    python benchmarks/prepare_memory.py [--gb 1.0] [--tokenizer char] [--workers 0] [--tmp /tmp]

Writes a JSONL corpus of --gb gigabytes to --tmp (documents of 20–60 paragraphs
drawn at random from the built-in corpus), runs `lmforge prepare` on it as a
separate process while sampling the memory of that process and its workers
every 50 ms, prints a table and deletes everything it wrote. The goal: peak
memory under 1.5 GB for 1 GB of text, whatever the corpus size.

Memory is reported two ways: the sum of the processes' PSS (proportional set
size: shared pages split between the processes that share them, the honest
total) and the sum of their RSS (shared pages counted in every process: an
upper bound). --tokenizer is a kind trained on the built-in corpus first
(char, word, bpe) or a tokenizer JSON file.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from lmforge.corpus import builtin_corpus_files


def generate(path: Path, n_bytes: int, seed: int = 0) -> int:
    """A JSONL file of about n_bytes; returns the number of documents."""
    paragraphs = [p for f in builtin_corpus_files() for p in f.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    rng = random.Random(seed)
    written = docs = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < n_bytes:
            lines = []
            for _ in range(1000):
                text = "\n\n".join(rng.choices(paragraphs, k=rng.randint(20, 60)))
                lines.append(json.dumps({"id": docs, "text": text}, ensure_ascii=False))
                docs += 1
            block = "\n".join(lines) + "\n"
            f.write(block)
            written += len(block.encode("utf-8"))
    return docs


def tree_memory(pid: int) -> tuple[int, int]:
    """(sum of PSS, sum of RSS) in bytes over `pid` and its descendants."""
    pids, stack = [], [pid]
    while stack:
        p = stack.pop()
        pids.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    pss = rss = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
        except OSError:
            pass
    return pss, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--tokenizer", default="char")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--tmp", default="/tmp")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lmforge-prepare-bench-", dir=args.tmp))
    try:
        spec = args.tokenizer
        if spec in ("char", "word", "bpe"):  # trained on the built-in corpus, not on the 1 GB
            spec = str(work / "tokenizer.json")
            subprocess.run([sys.executable, "-m", "lmforge", "tokenizer", "train", "--kind", args.tokenizer,
                            "--data", str(builtin_corpus_files()[0].parent), "--out", spec], check=True,
                           stdout=subprocess.DEVNULL)
        corpus = work / "corpus.jsonl"
        start = time.perf_counter()
        docs = generate(corpus, int(args.gb * 1e9))
        size = corpus.stat().st_size
        print(f"generated {size / 1e9:.2f} GB, {docs:,} documents in {time.perf_counter() - start:.0f} s", flush=True)

        cmd = [sys.executable, "-m", "lmforge", "prepare", "--data", str(corpus), "--tokenizer", spec,
               "--out", str(work / "out"), "--workers", str(args.workers), "--no-progress"]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = [0, 0]

        def watch() -> None:
            while proc.poll() is None:
                pss, rss = tree_memory(proc.pid)
                peak[0], peak[1] = max(peak[0], pss), max(peak[1], rss)
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        out, err = proc.communicate()
        watcher.join()
        wall = time.perf_counter() - start
        if proc.returncode:
            raise SystemExit(f"prepare failed: {err.strip()}")
        index = json.loads((work / "out" / "index.json").read_text())
        tokens = sum(s["tokens"] for s in index["splits"].values())
        print(out.strip())
        print(f"{'input GB':>9s} {'tokenizer':>10s} {'tokens':>14s} {'wall s':>7s} {'MB/s':>6s} "
              f"{'peak PSS GB':>12s} {'peak RSS GB':>12s}")
        print(f"{size / 1e9:9.2f} {index['tokenizer_kind']:>10s} {tokens:14,d} {wall:7.1f} {size / 1e6 / wall:6.1f} "
              f"{peak[0] / 1e9:12.3f} {peak[1] / 1e9:12.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
