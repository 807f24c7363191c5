"""`lmforge report`: one self-contained HTML page (and Markdown) about a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from lmforge.commands.common import load_run, write_json
from lmforge.errors import LmforgeError

HELP = "one HTML page (and Markdown): curves, verdict, evals, probes, samples"
DESCRIPTION = ("Write RUN_DIR/report.html (self-contained) and report.md: the curves, the best step, an "
               "under-/overfitting verdict with its evidence, the eval history, results saved in RUN_DIR/evals/ by "
               "eval --save, probe --save and study, and samples.")
SHARED = ("device", "stride")

EXAMPLES = """examples:
  lmforge report runs/shakespeare                                   # runs/shakespeare/report.html and report.md
  lmforge report runs/demo --data held_out.txt --suite sotu         # also evaluate a file and run a probe suite
  lmforge report runs/demo --out reports/demo.html"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", metavar="FILE.html", help="where to write the HTML (default RUN_DIR/report.html; "
                   "the Markdown goes beside it)")
    p.add_argument("--data", action="append", default=[], metavar="PATH",
                   help="also evaluate the run on this text file (repeatable); saved in RUN_DIR/evals/")
    p.add_argument("--suite", action="append", default=[], metavar="FILE.jsonl",
                   help="also run this probe suite (repeatable); saved in RUN_DIR/evals/")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.evaluation.report import build_report, fresh_results

    if args.out and Path(args.out).is_dir():
        raise LmforgeError(f"--out '{args.out}' is a folder; pass --out with the HTML file to write, e.g. "
                           f"{Path(args.out) / 'report.html'}")
    for path, result in fresh_results(lambda: load_run(args), args.run_dir, args.data, args.suite, args.stride):
        write_json(path, result)
    result = build_report(args.run_dir, args.out)
    v = result.verdict
    print(f"verdict: {v.label}" + (f"; best step {v.best_step} (val loss {v.best_val_loss:.4f})"
                                   if v.best_step is not None else ""))
    for line in v.evidence:
        print(f"  - {line}")
    print(f"wrote {result.html_path} and {result.markdown_path}")
    return 0
