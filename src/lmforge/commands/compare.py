"""`lmforge compare`: set runs or model families side by side on the same val text."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lmforge.paths import check_out_folder

HELP = "set runs or model families side by side on the same val text"
DESCRIPTION = ("Score runs on the same val text (loss, perplexity, bits per byte) and sample from each; or, with "
               "--families, first train each family for the same wall-clock budget. Writes comparison.md and "
               "comparison.png.")
SHARED = ("device",)

EXAMPLES = """examples:
  lmforge compare --families ngram,rnn,transformer --data tinyshakespeare.txt --seconds 120 --out runs/cmp
  lmforge compare runs/a runs/b runs/c                       # the val split of the data they were trained on
  lmforge compare runs/a runs/b --data other.txt --out runs/ab"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="run directories to compare")
    p.add_argument("--families", metavar="LIST", help="train these families first, e.g. ngram,rnn,transformer "
                   "(each from its compare-FAMILY preset)")
    p.add_argument("--data", metavar="PATH", help="the text: its last 10%% is the val text (with --families, the rest "
                   "is trained on; default: the runs' own training text, or the built-in corpus)")
    p.add_argument("--seconds", type=float, default=120.0, metavar="S", help="training budget per family (default 120)")
    p.add_argument("--out", metavar="DIR", help="where to write (default: runs/compare-TIMESTAMP)")
    p.add_argument("--prompt", default=None, help="prompt for the samples (default: each run's sample prompt)")
    p.add_argument("--max-new-tokens", type=int, default=300, metavar="N", help="tokens per sample (default 300)")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.evaluation.compare import comparison_table, run_comparison

    check_out_folder(args.out)
    rows, md, png = run_comparison(args.run_dirs, args.families, args.data, args.seconds,
                                   Path(args.out) if args.out else None, args.device, args.max_new_tokens, args.prompt,
                                   log=lambda line: print(line, file=sys.stderr))
    print(comparison_table(rows))
    print(f"wrote {md} and {png}")
    return 0
