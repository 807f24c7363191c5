"""`lmforge merge`: fold a LoRA run's adapters into its weights."""

from __future__ import annotations

import argparse
import sys

HELP = "fold a LoRA run's adapters into its weights (an ordinary run: faster to decode, exportable)"
DESCRIPTION = "Write RUN_DIR's model with every adapter folded in (W + alpha/r · B A) as a new run without adapters."
EXAMPLES = """examples:
  lmforge merge runs/president-lora --out runs/president-merged
  lmforge export runs/president-merged --format hf --out exported/president"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run fine-tuned with --lora-rank")
    p.add_argument("--out", required=True, metavar="DIR", help="the new run directory")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.adapt.finetune import merge_run

    print(f"saved {merge_run(args.run_dir, args.out)}", file=sys.stderr)
    return 0
