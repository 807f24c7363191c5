"""`lmforge finetune`: instruction fine-tuning of a run or a local Hugging Face model, fully or with LoRA."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lmforge.commands.train import parse_overrides
from lmforge.errors import LmforgeError

HELP = "fine-tune a run (or a local Hugging Face model) on prompt/completion pairs or chat messages"
DESCRIPTION = ("Continue training BASE (a run directory, or a folder saved by transformers' save_pretrained: GPT-2 "
               "or Llama-style) on a JSONL file of {\"prompt\", \"completion\"} pairs or {\"messages\": [...]} "
               "conversations. The loss counts only the answers (and the EOS after each), so the model learns to "
               "answer and to stop. The result is an ordinary run directory (resume, eval, sample, serve with "
               "/v1/chat/completions). With --lora-rank, only small adapters train; `lmforge merge` folds them in. "
               "Training keys can be overridden with --train.key VALUE.")
ACCEPTS_OVERRIDES = True
EXAMPLES = """examples:
  lmforge tasks --out tasks/
  lmforge finetune runs/default --data tasks/president.train.jsonl --out runs/president
  lmforge finetune runs/default --data tasks/president.train.jsonl --out runs/president-lora --lora-rank 8
  lmforge finetune exported/llama-like --data chats.jsonl --val-data chats-val.jsonl --out runs/chat --train.max_steps 500
  lmforge finetune --resume runs/president --train.max_steps 600
  lmforge merge runs/president-lora --out runs/president-merged"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", nargs="?", metavar="BASE", help="a run directory or a local Hugging Face model folder")
    p.add_argument("--data", metavar="FILE.jsonl", help="prompt/completion pairs or messages, one JSON object a line")
    p.add_argument("--val-data", metavar="FILE.jsonl", help="examples to evaluate on (default: a held-out 10%%)")
    p.add_argument("--out", metavar="RUN_DIR", help="the new run directory")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a fine-tuning run from its newest checkpoint")
    p.add_argument("--lora-rank", type=int, default=0, metavar="R", help="train rank-R LoRA adapters only (0: all "
                   "weights train)")
    p.add_argument("--lora-alpha", type=float, default=16.0, metavar="A", help="LoRA scale: the update is A/R · B A (16)")
    p.add_argument("--lora-dropout", type=float, default=0.0, metavar="D", help="dropout on the adapters' input (0)")
    p.add_argument("--lora-targets", default="qkv,proj,fc", metavar="NAMES",
                   help="linear layers to adapt, by the end of their names (qkv,proj,fc)")
    p.add_argument("--merge", action="store_true", help="with --lora-rank: also write RUN_DIR-merged, adapters folded in")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.adapt.finetune import finetune, merge_run, resume_finetune

    if args.resume and args.base is not None:  # argparse took an override's value for BASE: give it back
        extra, args.base = [*extra, args.base], None
    overrides = dict(parse_overrides(extra))
    bad = [k for k in overrides if not k.startswith(("train.", "sample."))]
    if bad:
        raise LmforgeError(f"--{bad[0]} cannot be set when fine-tuning: the model and tokenizer are the base's; "
                           "override --train.* or --sample.* keys")
    if args.merge and not (args.lora_rank or args.resume):
        raise LmforgeError("--merge folds LoRA adapters into the model; add --lora-rank R (a full fine-tune has none)")
    if args.resume:
        trainer, out = resume_finetune(args.resume, overrides), Path(args.resume)
    elif not (args.base and args.data and args.out):
        raise LmforgeError("finetune needs BASE, --data FILE.jsonl and --out RUN_DIR (or --resume RUN_DIR)")
    else:
        lora = {f"model.lora_{k}": getattr(args, f"lora_{k}") for k in ("rank", "alpha", "dropout", "targets")}
        out = Path(args.out)
        trainer = finetune(args.base, args.data, out, overrides | (lora if args.lora_rank else {}), args.val_data)
    model = trainer.model
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"fine-tuning {model.describe()}: {trainable:,} of {model.num_params():,} parameters train, on "
          f"{len(trainer.train_rows):,} examples ({len(trainer.val_rows):,} val) → {out}", file=sys.stderr)
    del model
    result = trainer.fit()
    print(f"run saved to {result.out_dir}")
    print(f"best val loss {result.best_val_loss:.4f} nats/answer token at step {result.best_step}")
    print("--- sample ---")
    print(result.sample)
    if args.merge and trainer.cfg.model.lora_rank:
        merged = merge_run(out, out.with_name(out.name + "-merged"))
        print(f"merged run saved to {merged}")
    return 0
