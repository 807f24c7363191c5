"""What a smaller sliding-window stride buys and costs: loss, perplexity, bits per byte and
seconds per stride, for one trained run on one text file, side by side in one process.

    python benchmarks/eval_stride.py runs/demo --data held_out.txt --strides 64,32,16,4,1

Time is relative to the first stride (usually the context: non-overlapping windows), so
the ratio holds on a noisy machine.
"""

from __future__ import annotations

import argparse
import time

import lmforge
from lmforge.evaluation.perplexity import evaluate_run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--data", required=True)
    parser.add_argument("--strides", default=None, help="comma-separated (default: context, context/2, /4, /16, 1)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    run = lmforge.load(args.run_dir, device=args.device)
    block = run.config.model.block_size
    strides = ([int(s) for s in args.strides.split(",")] if args.strides
               else sorted({block, max(1, block // 2), max(1, block // 4), max(1, block // 16), 1}, reverse=True))
    print(f"{args.run_dir} on {args.data}: context {block}, device {run.device}\n")
    print("| stride | min context | loss | perplexity | bits/byte | seconds | time × |\n|---:|---:|---:|---:|---:|---:|---:|")
    first = None
    for stride in strides:
        start = time.perf_counter()
        r = evaluate_run(run, args.data, stride=stride)
        seconds = time.perf_counter() - start
        first = first or seconds
        print(f"| {stride} | {block - stride + 1} | {r['loss']:.4f} | {r['perplexity']:.3f} | {r['bits_per_byte']:.4f} "
              f"| {seconds:.2f} | {seconds / first:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
