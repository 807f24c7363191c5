"""Encode throughput: lmforge's byte-level BPE against tiktoken, same GPT-2 vocabulary, same run.

Both tokenizers are built offline from GPT-2's encoder.json + vocab.bpe; every
row must produce tiktoken's ids exactly (checked). Rows alternate and each
keeps its best of --repeats, because the machine is shared and noisy; every row but
the cold one is timed right after an untimed call of itself. "CPU s
per MB" adds up every thread and worker process: on a machine whose cores are
busy with other work, parallel rows cannot beat their CPU cost.

    python benchmarks/encode_throughput.py [--gpt2 ../shared/data/gpt2-bpe] [--repeats 3] [--mb 0]

Rows:
- tiktoken encode_ordinary: one call, one thread (how most people call it);
- tiktoken encode_ordinary_batch: the text in ~1 MB parts on all cores;
- lmforge encode_array, cold: a freshly loaded tokenizer (its caches empty), all cores;
- lmforge encode, cold: the same on one thread;
- lmforge encode_array, warm: the same tokenizer again (every piece cached);
- lmforge encode, 1 thread: one call on the whole text as a list;
- Hugging Face alone: encode_batch_fast on the same ~1 MB parts, all cores (no piece cache).
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np

from lmforge.corpus import builtin_corpus
from lmforge.tokenizers import bpe as bpe_module
from lmforge.tokenizers import load_gpt2
from lmforge.tokenizers.cuts import split_text
from lmforge.tokenizers.gpt2 import gpt2_tiktoken

DEFAULT_GPT2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "gpt2-bpe"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpt2", type=Path, default=DEFAULT_GPT2, help="folder with encoder.json and vocab.bpe")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mb", type=float, default=0, help="use only the first MB of the corpus (0: all of it)")
    args = ap.parse_args()

    text = builtin_corpus()
    if args.mb:
        text = text[: int(args.mb * 1e6)]
    n_bytes = len(text.encode("utf-8"))
    cores = bpe_module.cores()
    parts = split_text(text, 1 << 20)
    reference = gpt2_tiktoken(args.gpt2)
    expected = np.array(reference.encode_ordinary(text))
    warm = load_gpt2(args.gpt2)
    warm.encode_array(text)

    def cpu_seconds() -> float:
        """CPU time of this process (all its threads) and of its finished child processes."""
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    def measure(fn):
        wall, cpu = time.perf_counter(), cpu_seconds()
        ids = fn()
        return ids, time.perf_counter() - wall, cpu_seconds() - cpu

    def cold(method: str):
        def run():
            tok = load_gpt2(args.gpt2)  # loading is not timed: only the encode below
            return measure(lambda: getattr(tok, method)(text))
        return run

    def timed(fn):
        """Time `fn` right after an untimed call of it: a warm row, whatever ran before (a forked row leaves
        this process's pages to be re-touched; that is the cost of the row before, not of this one)."""
        def run():
            fn()
            return measure(fn)
        return run

    flat = lambda lists: np.fromiter((i for ids in lists for i in ids), dtype=np.int64)  # noqa: E731
    rows = {  # the one-thread rows first: a row that forks leaves this process's pages to be re-touched
        "tiktoken encode_ordinary": (1, timed(lambda: reference.encode_ordinary(text))),
        "lmforge encode (list), cold cache": (1, cold("encode")),
        "lmforge encode (list), warm cache": (1, timed(lambda: warm.encode(text))),
        "tiktoken encode_ordinary_batch": (cores, timed(lambda: flat(reference.encode_ordinary_batch(
            parts, num_threads=cores)))),
        "lmforge encode_array, cold cache": (cores, cold("encode_array")),
        "lmforge encode_array, warm cache": (cores, timed(lambda: warm.encode_array(text))),
        "Hugging Face encode_batch_fast": (cores, timed(lambda: flat(e.ids for e in warm.hf.encode_batch_fast(
            parts, add_special_tokens=False)))),
    }
    best = {name: float("inf") for name in rows}
    best_cpu = {name: float("inf") for name in rows}
    for _ in range(args.repeats):
        for name, (_, run) in rows.items():
            ids, seconds, cpu = run()
            if not np.array_equal(np.asarray(ids), expected):
                raise SystemExit(f"{name}: ids differ from tiktoken's")
            best[name], best_cpu[name] = min(best[name], seconds), min(best_cpu[name], cpu)

    base = n_bytes / 1e6 / best["tiktoken encode_ordinary"]
    print(f"{n_bytes / 1e6:.1f} MB (built-in corpus), {len(expected):,} tokens, GPT-2 vocabulary, "
          f"{os.cpu_count()} CPUs, best of {args.repeats}; ids identical to tiktoken in every row")
    print(f"{'encoder':36s} {'threads':>7s} {'MB/s':>7s} {'× tiktoken 1-thread':>20s} {'CPU s per MB':>13s}")
    for name, (threads, _) in rows.items():
        mbs = n_bytes / 1e6 / best[name]
        print(f"{name:36s} {threads:7d} {mbs:7.2f} {mbs / base:20.2f} {best_cpu[name] / (n_bytes / 1e6):13.3f}")


if __name__ == "__main__":
    main()
