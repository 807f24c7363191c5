"""`lmforge size`: parameters by part, FLOPs per token, training memory and eval cost, before training."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from lmforge.errors import LmforgeError

HELP = "parameters by part, FLOPs per token, training memory and eval cost of a config or run, without training"
DESCRIPTION = ("Size a model before training it: parameters by part (token embedding, positions, attention, MLP, "
               "norms, output head; a tied head counted once), FLOPs per token, the training memory of one process "
               "(weights, gradients, optimizer state, activations) against the device's free memory, and what one "
               "eval scores. Takes a preset, a config file or a run directory, and --section.key overrides, as "
               "`lmforge train` does; `lmforge train ... --dry-run` prints the same. RUN_DIR: a run directory (its "
               "config.yaml, tokenizer and measured speed).")
SHARED = ("text_field", "separator")  # as `lmforge train` takes them
ACCEPTS_OVERRIDES = True
EXAMPLES = """examples:
  lmforge size                                      # the default preset on the built-in corpus
  lmforge size --preset shakespeare-char-cpu --model.n_embd 256 --train.batch_size 64
  lmforge size --config my.yaml --data my.txt
  lmforge size runs/shakespeare                     # a trained run: its vocabulary, data and measured speed
  lmforge size --model.block_size 1024 --free-mib 2048   # would it fit in 2 GiB?
  lmforge size --train.parallel fsdp --processes 4  # per process under torchrun"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from lmforge.commands.train import add_config_flags

    # RUN_DIR, when given, is the first argument argparse leaves over (a declared optional positional would take
    # the value of an override such as `--train.batch_size 64`)
    p.usage = ("lmforge size [RUN_DIR] [--preset NAME] [--config FILE.yaml] [--data PATH] [--text-field FIELD] "
               "[--separator TEXT] [--tokenizer KIND] [--vocab-size N] [--processes N] [--free-mib MIB] "
               "[--section.key VALUE ...]")
    add_config_flags(p)
    p.add_argument("--processes", type=int, metavar="N", help="processes under torchrun (default: WORLD_SIZE or 1)")
    p.add_argument("--free-mib", type=float, metavar="MIB", help="compare with this much free memory instead of "
                   "the device's")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.commands.train import build_config, data_flags, parse_overrides

    run_dir = extra.pop(0) if extra and not extra[0].startswith("-") else None
    overrides = parse_overrides(extra)
    if run_dir:
        if args.preset or args.config or data_flags(args):
            raise LmforgeError("a RUN_DIR brings its own config and data; drop --preset, --config and the data flags "
                               "(change single keys with e.g. --train.batch_size 64)")
        from lmforge.sizing.data_facts import for_run

        cfg, facts = for_run(Path(run_dir))
        if overrides:
            cfg = cfg.updated(dict(overrides))
    else:
        from lmforge.sizing.data_facts import for_config

        cfg, _ = build_config(args, overrides)
        facts = for_config(cfg)
    print(report(cfg, facts, args.processes, args.free_mib))
    return 0


def report(cfg, facts, processes: int | None = None, free_mib: float | None = None) -> str:
    """The sizing table of `cfg`, compared with the device's free memory (or `free_mib`)."""
    from lmforge.sizing import size
    from lmforge.sizing.memory import free_memory
    from lmforge.sizing.report import render
    from lmforge.training.distributed import check_batch_split

    n = int(os.environ.get("WORLD_SIZE", "1")) if processes is None else processes
    if n < 1:
        raise LmforgeError(f"--processes must be at least 1, not {n}")
    if free_mib is not None and not 0 <= free_mib < math.inf:  # `not`: nan too
        raise LmforgeError(f"--free-mib must be a finite number of MiB, 0 or more, not {free_mib}")
    check_batch_split(cfg.train, n)
    free = ("the given memory (--free-mib)", int(free_mib * 2**20)) if free_mib is not None \
        else free_memory(cfg.train.device)
    return render(size(cfg, facts, n), free)
