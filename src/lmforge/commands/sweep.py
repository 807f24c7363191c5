"""`lmforge sweep`: train a grid of settings under one budget, resumably, and tabulate and plot the results."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from lmforge.commands.train import parse_overrides
from lmforge.errors import LmforgeError
from lmforge.paths import check_out_folder

HELP = "train a grid of settings under the same budget (resumable); a table, plots, and a scaling fit"
DESCRIPTION = ("Train every combination of the --param values as its own run in OUT/points/, each under the same "
               "budget (--tokens or --budget seconds), and write OUT/sweep.csv, sweep.md and sweep.png. Rerun the "
               "same command after an interruption: finished points are kept, an unfinished one resumes from its "
               "checkpoint. --scaling gives every point the same compute (--flops) and fits a power law of val "
               "loss against model size and against tokens.")
ACCEPTS_OVERRIDES = True
EXAMPLES = """examples:
  lmforge sweep --param model.block_size=32,64,128,256 --tokens 2000000 --out sweeps/context
  lmforge sweep --preset shakespeare-char-cpu --data tinyshakespeare.txt --param train.lr=1e-3,3e-3 --param model.n_layer=2,4 --budget 60 --out sweeps/lr
  lmforge sweep --scaling --param model.n_embd=32,64,96,128,192 --flops 2e13 --out sweeps/scaling"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", action="append", default=[], metavar="KEY=V1,V2",
                   help="a setting and its values (repeat for a grid), e.g. model.n_embd=64,128,256")
    p.add_argument("--out", required=True, metavar="DIR", help="the sweep's folder (rerun to continue it)")
    p.add_argument("--tokens", type=int, default=0, metavar="N", help="training tokens per point")
    p.add_argument("--budget", type=float, default=0, metavar="SECONDS", help="training-loop seconds per point")
    p.add_argument("--flops", type=float, default=0, metavar="C", help="--scaling: training FLOPs per point (6·N·D)")
    p.add_argument("--scaling", action="store_true", help="fit val loss against model size and tokens at --flops")
    p.add_argument("--preset", metavar="NAME", help="the base preset (default: 'default')")
    p.add_argument("--config", metavar="FILE.yaml", help="a YAML config over the preset")
    p.add_argument("--data", metavar="PATH", help="the training data (= --data.path; default: the built-in corpus)")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.config_files import load_preset, read_yaml
    from lmforge.data.sources import find_files
    from lmforge.experiments.sweep import compute_budget, parse_params, plan, run_sweep

    if args.tokens < 0 or not 0 <= args.flops < math.inf:  # `not`: nan too
        raise LmforgeError(f"--tokens and --flops must be positive, finite numbers (got {args.tokens}, {args.flops})")
    check_out_folder(args.out)
    grid, out = parse_params(args.param), Path(args.out)
    layers = [(f"preset '{args.preset or 'default'}'", load_preset(args.preset or "default"))]
    if args.config:
        layers.append((args.config, read_yaml(args.config)))
    overrides = dict(parse_overrides(extra)) | ({"data.path": args.data} if args.data else {})
    if args.data:
        find_files(args.data)  # missing data is one line before any point starts, not each point's
    layers.append(("command line", overrides))
    if args.scaling:
        if not args.flops or args.tokens or args.budget:
            raise LmforgeError("--scaling gives every point the same compute: pass --flops C (and no --tokens or --budget)")
        points = plan(layers, grid, out, tokens=1)
        compute_budget(points, args.flops)
    else:
        if args.flops:
            raise LmforgeError("--flops is the budget of --scaling; a plain sweep takes --tokens N or --budget SECONDS")
        points = plan(layers, grid, out, tokens=args.tokens, seconds=args.budget)
    rows = run_sweep(points, out, args.budget, log=lambda m: print(m, file=sys.stderr))
    print((out / "sweep.md").read_text(encoding="utf-8"))
    if args.scaling:
        from lmforge.experiments.scaling import fit_sweep

        print(fit_sweep(rows, out))
    print(f"saved {out}/sweep.csv, sweep.md, sweep.png", file=sys.stderr)
    return 0

