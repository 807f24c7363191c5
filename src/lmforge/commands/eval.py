"""`lmforge eval`: loss, perplexity and bits per byte of a model on a text."""

from __future__ import annotations

import argparse
import json
import sys

from lmforge.commands.common import load_run, write_json

HELP = "loss, perplexity and bits per byte of a model on a text file"
DESCRIPTION = "Score every token of a text file with a trained model."
SHARED = ("json", "device", "quantize")

EXAMPLES = """examples:
  lmforge eval runs/shakespeare --data held_out.txt
  lmforge eval runs/shakespeare --data held_out.txt --stride 32     # overlapping windows: more context per token
  lmforge eval runs/shakespeare --data held_out.txt --json > base.json
  lmforge eval runs/shakespeare --data held_out.txt --save          # kept in RUN_DIR/evals/ for `lmforge report`"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--data", required=True, metavar="PATH", help="a UTF-8 text file")
    p.add_argument("--stride", type=int, default=None, metavar="S",
                   help="start a window every S tokens, scoring only its last S (default: the context size, "
                        "non-overlapping windows, as val_loss in training; smaller S: more context per token, "
                        "lower loss, context/S times the work)")
    p.add_argument("--save", action="store_true", help="also write RUN_DIR/evals/eval-NAME.json for `lmforge report`")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="windows per forward pass")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from pathlib import Path

    from lmforge.evaluation.perplexity import evaluate_run, format_eval
    from lmforge.evaluation.report import result_path

    run = load_run(args)
    result = evaluate_run(run, args.data, stride=args.stride, batch_size=args.batch_size)
    if result["unknown_chars"]:
        print(f"warning: {result['unknown_chars']:,} {run.tokenizer.unknown_unit}(s) of {args.data} are not in the "
              "vocabulary and were replaced", file=sys.stderr)
    if args.save:
        write_json(result_path(args.run_dir, "eval", Path(args.data).stem), result)
    print(json.dumps(result) if args.json else format_eval(result))
    return 0
