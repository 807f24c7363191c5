"""`lmforge study`: decode the same prompts with several strategies and score each."""

from __future__ import annotations

import argparse
import json

from lmforge.commands.common import load_run
from lmforge.paths import check_out_folder

HELP = "compare decoding strategies on a set of prompts"
DESCRIPTION = ("Decode the same prompts with several strategies and score each on distinct-1/distinct-2, rep-4 "
               "(repeated word 4-grams), mean log-probability under the model and length. Prints a table; writes "
               "study.json, study.md and study.png to --out.")
SHARED = ("json", "device")

EXAMPLES = """examples:
  lmforge study runs/shakespeare --prompts prompts.txt              # one prompt per line
  lmforge study runs/shakespeare --prompts prompts.txt --strategies greedy,t=0.8,k=40,p=0.9,t=0.8+p=0.95
  lmforge study runs/shakespeare --prompts prompts.txt --samples 8 --max-new-tokens 200 --json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from lmforge.evaluation.decoding_study import DEFAULT_STRATEGIES

    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--prompts", required=True, metavar="FILE",
                   help="one prompt per line (\\n for a newline), or JSONL with a \"prompt\" per line")
    p.add_argument("--strategies", default=DEFAULT_STRATEGIES, metavar="LIST",
                   help="comma-separated: greedy, temperature=T, top_k=K, top_p=P, joined with + "
                   f"(default {DEFAULT_STRATEGIES})")
    p.add_argument("--samples", type=int, default=4, metavar="N", help="continuations per prompt and strategy")
    p.add_argument("--max-new-tokens", type=int, default=100, metavar="N", help="tokens per continuation")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="sampling seed (each strategy starts from it)")
    p.add_argument("--out", metavar="DIR", help="where to write the results (default RUN_DIR/evals)")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.evaluation.decoding_study import format_table, parse_strategies, read_prompts, study

    check_out_folder(args.out)
    strategies = parse_strategies(args.strategies)
    prompts = read_prompts(args.prompts)
    results, result, paths = study(load_run(args), args.run_dir, prompts, strategies, args.max_new_tokens,
                                   args.samples, args.seed, args.out)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(format_table(results))
        print(f"\nwrote {paths['json']}, {paths['markdown']} and {paths['plot']}")
    return 0
