"""How long a byte-level BPE of 8,000 tokens takes to train on the whole built-in corpus (about 12 MB).

    python benchmarks/bpe_train_time.py [--vocab-size 8000] [--repeats 2]

Prints wall time (the issue's goal: under 15 s on 2 cores) and the CPU time of
this process, which tells how much of the wall time other programs on a shared
machine took.
"""

from __future__ import annotations

import argparse
import os
import time

from lmforge.corpus import builtin_corpus_files
from lmforge.tokenizers import BpeTokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    docs = [p.read_text(encoding="utf-8") for p in builtin_corpus_files()]
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    print(f"{len(docs)} documents, {n_bytes / 1e6:.1f} MB, vocab {args.vocab_size:,}, {os.cpu_count()} CPUs")
    print(f"{'run':>3s} {'wall s':>8s} {'cpu s':>8s} {'vocab':>7s} {'tokens/byte':>12s}")
    for run in range(1, args.repeats + 1):
        wall, cpu = time.perf_counter(), time.process_time()
        tok = BpeTokenizer.train(docs, args.vocab_size)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        per_byte = len(tok.encode(docs[-1])) / len(docs[-1].encode("utf-8"))
        print(f"{run:3d} {wall:8.2f} {cpu:8.2f} {tok.vocab_size:7,d} {per_byte:12.4f}")


if __name__ == "__main__":
    main()
