"""`lmforge tasks`: write the built-in tasks made from the built-in corpus (adapt/tasks.py)."""

from __future__ import annotations

import argparse
import sys

HELP = "write the built-in fine-tuning and classification tasks (JSONL) made from the built-in corpus"
DESCRIPTION = ("Write president.{train,test}.jsonl (prompt/completion: which president, and which party, delivered "
               "the State of the Union of a year) and century.{train,test}.jsonl (text/label: the century of a "
               "paragraph's address). Years ending in 3 or 7 are test, every other year train.")
EXAMPLES = """examples:
  lmforge tasks --out tasks/
  lmforge finetune runs/default --data tasks/president.train.jsonl --out runs/president
  lmforge classify train runs/default --data tasks/century.train.jsonl --test-data tasks/century.test.jsonl --out runs/century"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write the JSONL files in")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.adapt.tasks import write_tasks

    for path in write_tasks(args.out):
        print(f"saved {path} ({sum(1 for _ in path.open(encoding='utf-8')):,} rows)", file=sys.stderr)
    return 0
