"""`lmforge probe`: run a suite of prompt probes and summarize it by check type."""

from __future__ import annotations

import argparse
import json
import sys

from lmforge.commands.common import load_run, write_json
from lmforge.errors import LmforgeError

HELP = "run a suite of prompt probes and summarize by check type"
DESCRIPTION = "Run each probe of a suite against a model; print pass rates by check type and every failure."
SHARED = ("json", "device")

EXAMPLES = """examples:
  lmforge probe runs/demo --suite sotu                              # the example suite for the built-in corpus
  lmforge probe runs/mine --suite my_probes.jsonl --min-pass 0.8    # exit 1 when under 80% of checks pass
  lmforge probe runs/mine --suite my_probes.jsonl --json

suite lines (JSONL, one probe per line):
  {"id": "us", "prompt": "the United", "contains": " States"}
  {"id": "no-loop", "prompt": "The", "not_contains": ["the the"], "temperature": 0.8, "seed": 1}
  {"id": "year", "prompt": "In the year 18", "regex": "^\\\\d\\\\d"}
  {"id": "mc", "prompt": "the United", "choices": [" States", " Kingdom"], "answer": " States"}
  {"id": "same", "prompts": ["Fellow-Citizens of the", "Fellow Citizens of the"], "agree_on": "first_word"}"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--suite", required=True, metavar="FILE.jsonl",
                   help="a JSONL file, one probe per line, or the name of a shipped suite (sotu)")
    p.add_argument("--min-pass", type=float, default=0.0, metavar="F",
                   help="exit with status 1 when fewer than this fraction of checks pass (default 0)")
    p.add_argument("--verbose", action="store_true", help="list every check, not only the failures")
    p.add_argument("--save", action="store_true", help="also write RUN_DIR/evals/probe-NAME.json for `lmforge report`")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.evaluation.probes import format_report, probe_run

    if not 0.0 <= args.min_pass <= 1.0:
        raise LmforgeError(f"--min-pass is a fraction between 0 and 1, not {args.min_pass}")
    path, report, result = probe_run(lambda: load_run(args), args.run_dir, args.suite, min_pass=args.min_pass)
    if args.save:
        write_json(path, result)
    print(json.dumps(result, ensure_ascii=False) if args.json else format_report(report, verbose=args.verbose))
    if report.pass_rate < args.min_pass:
        print(f"lmforge probe: {report.pass_rate:.1%} of checks passed, under --min-pass {args.min_pass:.1%}",
              file=sys.stderr)
        return 1
    return 0
