"""`lmforge size`: parameters by part, FLOPs per token, training memory and eval cost, before training."""

from __future__ import annotations

import argparse
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
SHARED = ()
ACCEPTS_OVERRIDES = True
EXAMPLES = """examples:
  lmforge size                                      # the default preset on the built-in corpus
  lmforge size --preset shakespeare-char-cpu --model.n_embd 256 --train.batch_size 64
  lmforge size --config my.yaml --data my.txt
  lmforge size runs/shakespeare                     # a trained run: its vocabulary, data and measured speed
  lmforge size --model.block_size 1024 --free-mib 2048   # would it fit in 2 GiB?
  lmforge size --train.parallel fsdp --processes 4  # per process under torchrun"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    # RUN_DIR, when given, is the first argument argparse leaves over (a declared optional positional would take
    # the value of an override such as `--train.batch_size 64`)
    p.usage = ("lmforge size [RUN_DIR] [--preset NAME] [--config FILE.yaml] [--data PATH] [--processes N] "
               "[--free-mib MIB] [--section.key VALUE ...]")
    p.add_argument("--preset", metavar="NAME", help="a named preset (default: 'default'); see `lmforge presets`")
    p.add_argument("--config", metavar="FILE.yaml", help="a YAML config applied on top of the preset")
    p.add_argument("--data", metavar="PATH", help="the training data, for its vocabulary and splits (default: the "
                   "built-in corpus)")
    p.add_argument("--processes", type=int, metavar="N", help="processes under torchrun (default: WORLD_SIZE or 1)")
    p.add_argument("--free-mib", type=float, metavar="MIB", help="compare with this much free memory instead of "
                   "the device's")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.commands.train import build_config, parse_overrides

    run_dir = extra.pop(0) if extra and not extra[0].startswith("-") else None
    overrides = parse_overrides(extra)
    if run_dir:
        if args.preset or args.config or args.data:
            raise LmforgeError("a RUN_DIR brings its own config and data; drop --preset, --config and --data "
                               "(change single keys with e.g. --train.batch_size 64)")
        from lmforge.sizing.data_facts import for_run

        cfg, facts = for_run(Path(run_dir))
        if overrides:
            cfg = cfg.updated(dict(overrides))
    else:
        from lmforge.sizing.data_facts import for_config

        flags = argparse.Namespace(preset=args.preset, config=args.config, data=args.data, tokenizer=None,
                                   vocab_size=None, text_field=None, separator=None)
        cfg, _ = build_config(flags, overrides)
        facts = for_config(cfg)
    print(report(cfg, facts, args.processes, args.free_mib))
    return 0


def report(cfg, facts, processes: int | None = None, free_mib: float | None = None) -> str:
    """The sizing table of `cfg`, compared with the device's free memory (or `free_mib`)."""
    from lmforge.sizing import size
    from lmforge.sizing.memory import free_memory
    from lmforge.sizing.report import render

    n = processes or int(os.environ.get("WORLD_SIZE", "1"))
    if n < 1:
        raise LmforgeError(f"--processes must be at least 1, not {n}")
    if cfg.train.batch_size % (cfg.train.grad_accum * n):
        raise LmforgeError(f"--train.batch_size ({cfg.train.batch_size}) must be divisible by --train.grad_accum "
                           f"({cfg.train.grad_accum}) × the number of processes ({n})")
    free = ("the given memory (--free-mib)", int(free_mib * 2**20)) if free_mib is not None \
        else free_memory(cfg.train.device)
    return render(size(cfg, facts, n), free)
