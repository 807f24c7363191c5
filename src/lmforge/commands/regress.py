"""`lmforge regress`: fail (exit 1) when a run is worse than a baseline beyond a tolerance."""

from __future__ import annotations

import argparse
import json

HELP = "fail (exit 1) when a run is worse than a baseline beyond a tolerance"
DESCRIPTION = ("Compare a run (or eval JSON) with a baseline run (or eval JSON) on loss and bits per byte. A metric "
               "regresses when it is worse than the baseline by more than max(--tolerance × baseline, "
               "--abs-tolerance). Exit status: 0 no regression, 1 regression, 2 bad input; for CI.")
SHARED = ("json", "device", "stride")

EXAMPLES = """examples:
  lmforge regress runs/new --baseline runs/old                      # best val loss and bits/byte from metrics.jsonl
  lmforge eval runs/old --data held_out.txt --json > base.json
  lmforge regress runs/new --baseline base.json --tolerance 0.005   # runs/new is evaluated on the same file
  lmforge regress runs/new --baseline runs/old --data held_out.txt --abs-tolerance 0.02"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run to check (or an eval JSON)")
    p.add_argument("--baseline", required=True, metavar="RUN_DIR_OR_EVAL_JSON",
                   help="a run directory or the output of `lmforge eval ... --json`")
    p.add_argument("--tolerance", type=float, default=0.01, metavar="F",
                   help="allowed relative worsening (default 0.01: 1%%)")
    p.add_argument("--abs-tolerance", type=float, default=0.0, metavar="X",
                   help="allowed absolute worsening in the metric's units (default 0)")
    p.add_argument("--data", metavar="PATH", help="evaluate every run directory on this file instead of its val split")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.evaluation.regression import format_result, regress

    result = regress(args.run_dir, args.baseline, tolerance=args.tolerance, abs_tolerance=args.abs_tolerance,
                     data=args.data, stride=args.stride, device=args.device)
    print(json.dumps(result.to_dict()) if args.json else format_result(result))
    return 1 if result.regressed else 0
