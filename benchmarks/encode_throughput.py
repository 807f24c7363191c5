"""Encode throughput on text the process has never seen: lmforge's byte-level BPE against tiktoken, GPT-2's vocabulary.

Every measurement runs in a fresh process, which builds its encoder from GPT-2's
encoder.json + vocab.bpe (not timed), reads the built-in corpus and times one
call on all of it: nothing in that process has encoded the text before. Rows
alternate and each keeps its best of --repeats, because the machine is shared
and noisy. Every row must give tiktoken's ids exactly (checked through a hash of
the ids). "CPU s per MB" adds up every thread: on a machine whose cores are
busy with other work, parallel rows cannot beat their CPU cost.

    python benchmarks/encode_throughput.py [--gpt2 ../shared/data/gpt2-bpe] [--repeats 3] [--mb 0]

Rows:
- tiktoken encode_ordinary: one call, one thread (how most people call it);
- lmforge encode_array: one call, one thread (what `prepare`'s workers, training and eval call);
- lmforge encode: the same, as a list;
- tiktoken encode_ordinary_batch: the text in ~1 MB parts on all cores (threads);
- Hugging Face encode_batch_fast: the same parts on all cores (its own encoder, which lmforge trains with).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_GPT2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "gpt2-bpe"
ROWS = {  # name: threads (0: all cores)
    "tiktoken encode_ordinary": 1,
    "lmforge encode_array": 1,
    "lmforge encode (list)": 1,
    "tiktoken encode_ordinary_batch": 0,
    "Hugging Face encode_batch_fast": 0,
}


def corpus(mb: float) -> str:
    from lmforge.corpus import builtin_corpus

    text = builtin_corpus()
    return text[: int(mb * 1e6)] if mb else text


def digest(ids) -> str:
    return hashlib.sha256(np.asarray(ids, dtype=np.uint32).tobytes()).hexdigest()


def measure_row(name: str, gpt2: Path, mb: float) -> dict:
    """Build the row's encoder, read the text, time one call (run in a fresh process)."""
    from lmforge.tokenizers import load_gpt2
    from lmforge.data.sources import split_text
    from lmforge.tokenizers.bpe import gpt2_tiktoken
    from lmforge.data.prepare import cores

    reference, lmforge = gpt2_tiktoken(gpt2), load_gpt2(gpt2)
    text = corpus(mb)
    parts = split_text(text, 1 << 20) if ROWS[name] == 0 else None
    flat = lambda lists: [i for ids in lists for i in ids]  # noqa: E731
    call = {
        "tiktoken encode_ordinary": lambda: reference.encode_ordinary(text),
        "lmforge encode_array": lambda: lmforge.encode_array(text),
        "lmforge encode (list)": lambda: lmforge.encode(text),
        "tiktoken encode_ordinary_batch": lambda: flat(reference.encode_ordinary_batch(parts, num_threads=cores())),
        "Hugging Face encode_batch_fast": lambda: flat(e.ids for e in lmforge.hf.encode_batch_fast(
            parts, add_special_tokens=False)),
    }[name]
    wall, cpu = time.perf_counter(), time.process_time()
    ids = call()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"seconds": wall, "cpu": cpu, "digest": digest(ids), "tokens": len(ids),
            "bytes": len(text.encode("utf-8")), "cores": cores()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpt2", type=Path, default=DEFAULT_GPT2, help="folder with encoder.json and vocab.bpe")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mb", type=float, default=0, help="use only the first MB of the corpus (0: all of it)")
    ap.add_argument("--row", choices=ROWS, help=argparse.SUPPRESS)  # a child process: measure one row
    args = ap.parse_args()
    if args.row:
        print(json.dumps(measure_row(args.row, args.gpt2, args.mb)))
        return

    from lmforge.tokenizers.bpe import gpt2_tiktoken

    expected = digest(gpt2_tiktoken(args.gpt2).encode_ordinary(corpus(args.mb)))
    best: dict[str, dict] = {}
    for _ in range(args.repeats):
        for name in ROWS:
            out = subprocess.run([sys.executable, __file__, "--row", name, "--gpt2", str(args.gpt2), "--mb", str(args.mb)],
                                 check=True, capture_output=True, text=True)
            row = json.loads(out.stdout)
            if row["digest"] != expected:
                raise SystemExit(f"{name}: ids differ from tiktoken's")
            if name not in best or row["seconds"] < best[name]["seconds"]:
                best[name] = row
            best[name]["cpu"] = min(best[name]["cpu"], row["cpu"])

    first = best["tiktoken encode_ordinary"]
    mb = first["bytes"] / 1e6
    base = mb / first["seconds"]
    print(f"{mb:.1f} MB (built-in corpus), {first['tokens']:,} tokens, GPT-2 vocabulary, {os.cpu_count()} CPUs, "
          f"best of {args.repeats}, each a first call in a fresh process; ids identical to tiktoken in every row")
    print(f"{'encoder':32s} {'threads':>7s} {'MB/s':>7s} {'× tiktoken 1-thread':>20s} {'CPU s per MB':>13s}")
    for name, threads in ROWS.items():
        row = best[name]
        mbs = mb / row["seconds"]
        print(f"{name:32s} {threads or row['cores']:7d} {mbs:7.2f} {mbs / base:20.2f} {row['cpu'] / mb:13.3f}")


if __name__ == "__main__":
    main()
