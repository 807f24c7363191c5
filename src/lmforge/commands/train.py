"""`lmforge train`: train a model and write a run directory, or resume one exactly."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lmforge.commands.common import unescape
from lmforge.errors import LmforgeError

HELP = "train a model (no arguments: the default preset on the built-in corpus)"
DESCRIPTION = ("Train a language model and write a run directory. Any config value can be overridden "
               "with --section.key VALUE, e.g. --train.max_steps 2000 or --model.n_layer 6.")
SHARED = ("text_field", "separator")
ACCEPTS_OVERRIDES = True

EXAMPLES = """examples:
  lmforge train                                    # default preset on the built-in corpus
  lmforge train --preset shakespeare-char-cpu --data tinyshakespeare.txt --out runs/shakespeare
  lmforge train --data my.txt --train.max_steps 2000 --model.n_layer 6    # my.txt's last 10% is val
  lmforge train --data speeches/ --tokenizer bpe --out runs/speeches  # each file a document, 10% of them val
  lmforge train --data 'books/*.txt' --out runs/books
  lmforge train --data corpus.jsonl --text-field body --out runs/corpus  # each line a document
  lmforge train --data plays.txt --separator '\\n\\n' --out runs/plays   # documents cut at blank lines
  lmforge train --data data/speeches --out runs/speeches2     # a directory from `lmforge prepare`
  lmforge train --config my_config.yaml --train.lr 3e-4
  lmforge train --preset shakespeare-char-cpu --model.n_embd 256 --dry-run   # its size and memory; trains nothing
  lmforge train --resume runs/shakespeare          # continue from the newest checkpoint
  lmforge train --resume runs/shakespeare --train.max_steps 4000
  lmforge train --init-from hf-models/gpt2-small --data my.txt --out runs/gpt2-on-my-text  # a local HF folder
  torchrun --nproc_per_node=4 -m lmforge train --out runs/ddp   # 4 processes (GPUs, or CPUs with gloo)"""


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """The flags that choose a config (preset, file, data and its tokenizer): `train` and `size` take the same."""
    p.add_argument("--config", metavar="FILE.yaml", help="a YAML config applied on top of the preset")
    p.add_argument("--preset", metavar="NAME", help="a named preset (default: 'default'); see `lmforge presets`")
    p.add_argument("--data", metavar="PATH",
                   help="a text file, a folder, a glob ('data/*.txt') or a JSONL file, prepared on the way into "
                   "RUN_DIR/data as `lmforge prepare` would; or a directory from `lmforge prepare` "
                   "(default: the built-in corpus)")
    p.add_argument("--tokenizer", metavar="KIND", help="char | word | bpe (= --data.tokenizer; a prepared --data "
                   "brings its own)")
    p.add_argument("--vocab-size", type=int, metavar="N", help="word or bpe vocabulary size (= --data.vocab_size; "
                   "default 8192)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_flags(p)
    p.add_argument("--out", metavar="RUN_DIR", help="where to write the run (default: runs/PRESET-TIMESTAMP)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR exactly where its newest checkpoint left off, with its config.yaml "
                   "(--train.* and --sample.* overrides allowed, e.g. a larger --train.max_steps)")
    p.add_argument("--init-from", metavar="DIR", help="start from the model, tokenizer and weights of a run directory or "
                   "a local Hugging Face GPT-2/Llama folder (its model settings replace --model.*)")
    p.add_argument("--dry-run", action="store_true", help="print what `lmforge size` prints for this run (parameters, "
                   "FLOPs, memory, eval cost) and exit without training or writing anything")


def parse_overrides(extra: list[str]) -> list[tuple[str, str]]:
    """`--section.key VALUE` or `--section.key=VALUE` pairs from the unparsed arguments."""
    pairs, args = [], iter(extra)
    for arg in args:
        if not arg.startswith("--") or "." not in arg:
            raise LmforgeError(f"unrecognized argument '{arg}'; config overrides look like --train.max_steps 2000")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            value = next(args, None)  # the flag's value is the next argument
            if value is None:
                raise LmforgeError(f"'{arg}' needs a value, e.g. {arg} 2000")
        pairs.append((key, value))
    return pairs


def data_flags(args: argparse.Namespace) -> dict[str, object]:
    """The data keys that --data, --tokenizer, --vocab-size, --text-field and --separator set."""
    given = {"data.path": args.data, "data.tokenizer": args.tokenizer, "data.vocab_size": args.vocab_size,
             "data.text_field": args.text_field, "data.separator": args.separator and unescape(args.separator)}
    return {key: value for key, value in given.items() if value is not None}


def build_config(args: argparse.Namespace, overrides: list[tuple[str, str]]):
    """The preset, then --config, then the --section.key overrides and the data flags, validated once."""
    from lmforge.config import Config
    from lmforge.config_files import load_preset, read_yaml

    preset = args.preset or "default"
    layers = [(f"preset '{preset}'", load_preset(preset))]
    if args.config:
        layers.append((args.config, read_yaml(args.config)))
    layers += [("command line", dict(overrides)), ("command line", data_flags(args))]
    return Config.from_layers(*layers), preset


def build_resume_config(args: argparse.Namespace, overrides: list[tuple[str, str]]):
    """The run's own config.yaml, with the overrides that leave its model and data alone."""
    from lmforge.config import Config
    from lmforge.training.run_dir import CONFIG_FILE

    run = Path(args.resume)
    if args.preset or args.config:
        raise LmforgeError("--resume continues a run with its own config.yaml; drop --preset and --config "
                           "(change single keys with e.g. --train.max_steps N)")
    if args.out and Path(args.out).resolve() != run.resolve():
        raise LmforgeError(f"--out {args.out} and --resume {run} differ; a resumed run continues in its own folder, "
                           "so drop --out")
    if not (run / CONFIG_FILE).is_file():
        raise LmforgeError(f"'{run}' has no {CONFIG_FILE}, so it is not a run directory; "
                           f"pass --resume with a folder written by `lmforge train --out`")
    if args.tokenizer is not None or args.vocab_size is not None:
        raise LmforgeError("--tokenizer and --vocab-size cannot change when resuming: the run keeps its "
                           "tokenizer.json; start a new run with --out to change them")
    if args.text_field is not None or args.separator is not None:
        raise LmforgeError("--text-field and --separator cannot change when resuming: the run reads the data it "
                           "prepared in RUN_DIR/data; start a new run with --out to change them")
    for key, _ in overrides:
        if key.split(".")[0] in ("model", "data") or key == "train.seed":
            raise LmforgeError(f"--{key} cannot change when resuming: the checkpoint holds a model trained with the "
                               "saved value; start a new run with --out to change it")
    # --data: the same text, moved; its files' count and size are checked against RUN_DIR/data
    return Config.from_file(run / CONFIG_FILE).updated({**dict(overrides), **data_flags(args)})


def run(args: argparse.Namespace, extra: list[str]) -> int:
    overrides = parse_overrides(extra)
    if args.resume:
        cfg, out = build_resume_config(args, overrides), Path(args.resume)
    else:
        cfg, preset = build_config(args, overrides)
        out = Path(args.out) if args.out else Path("runs") / f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.dry_run:
        return dry_run(args, cfg, out)

    from lmforge.training import Trainer

    if args.init_from:
        from lmforge.adapt.finetune import init_from

        if args.resume or args.tokenizer or args.vocab_size or any(k.startswith("model.") for k, _ in overrides):
            raise LmforgeError("--init-from brings its own model and tokenizer; drop --resume, --tokenizer, "
                               "--vocab-size and --model.* overrides")
        trainer = init_from(args.init_from, cfg, out)
    elif args.resume and (out / "finetune.json").is_file():
        raise LmforgeError(f"'{out}' is a fine-tuning run; continue it with `lmforge finetune --resume {out}`")
    else:
        trainer = Trainer(cfg, out, resume=bool(args.resume))  # reads and checks the data before anything is printed or written
    main_rank = trainer.dist.is_main  # under torchrun, rank 0 alone prints
    model = trainer.model  # not kept past fit: under torchrun the model holds the process group (distributed.close)
    if args.resume and main_rank:
        print(f"resuming {out} at step {trainer.step} of {cfg.train.max_steps} on {trainer.device}", file=sys.stderr)
    elif main_rank:
        what = model.describe() if model.fitted_by_counts else f"{model.describe()}, {model.num_params():,} parameters"
        how = "by counting" if model.fitted_by_counts else f"for {cfg.train.max_steps} steps"
        print(f"training a {what} on {cfg.data.path or 'the built-in corpus'} {how} on {trainer.device} → {out}",
              file=sys.stderr)
    del model
    result = trainer.fit()
    if not main_rank:
        return 0
    print(f"run saved to {result.out_dir}")
    print(f"best val loss {result.best_val_loss:.4f} nats/token at step {result.best_step} (whole val split): "
          f"val perplexity {result.best_val_ppl:.3f}, {result.best_val_bpb:.4f} bits/byte")
    print("--- sample ---")
    print(result.sample)
    return 0


def dry_run(args: argparse.Namespace, cfg, out: Path) -> int:
    """`--dry-run`: the sizing table of the run this command would train, and nothing written."""
    from lmforge.commands.size import report
    from lmforge.sizing.data_facts import for_config, for_run

    if args.init_from:
        raise LmforgeError("--dry-run sizes a config, and --init-from takes its model from a folder; size that "
                           "folder's run with `lmforge size RUN_DIR`, or drop --dry-run")
    facts = for_run(out)[1] if args.resume else for_config(cfg)
    print(report(cfg, facts))
    return 0
