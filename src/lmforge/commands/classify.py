"""`lmforge classify`: a language model as a text classifier (train a head on it, then label new text)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from lmforge.commands.common import SHARED as FLAGS
from lmforge.errors import LmforgeError
from lmforge.paths import check_out_folder

HELP = "train a classifier on a run's model (classify train), or label text with one (classify predict)"
DESCRIPTION = ("`train` puts a linear head on the hidden state of the last token of RUN_DIR's model and trains it on "
               "a JSONL file of {\"text\", \"label\"} (the body frozen, with LoRA adapters, or all of it), then "
               "reports accuracy, per-class precision and recall and a confusion matrix (report.md, confusion.png) "
               "on --test-data or a held-out 10%. `predict` labels each text of a JSONL file or --text.")
EXAMPLES = """examples:
  lmforge tasks --out tasks/                           # the built-in tasks, century.train.jsonl among them
  lmforge classify train runs/default --data tasks/century.train.jsonl --test-data tasks/century.test.jsonl \\
      --out runs/century --mode lora
  lmforge classify predict runs/century --text "The Congress declared war on Germany."
  lmforge classify predict runs/century --data tasks/century.test.jsonl"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    shared = dict(formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES, parents=[FLAGS["device"]])
    t = actions.add_parser("train", help="train a classifier on a run's model", description=DESCRIPTION, **shared)
    t.add_argument("path", metavar="RUN_DIR", help="the base run directory")
    t.add_argument("--data", required=True, metavar="FILE.jsonl", help="the labelled examples")
    t.add_argument("--test-data", metavar="FILE.jsonl", help="examples to report on (default: a held-out 10%%)")
    t.add_argument("--out", required=True, metavar="DIR", help="the classifier's folder")
    t.add_argument("--mode", default="head", choices=["head", "lora", "full"],
                   help="what trains: head (the body frozen), lora (adapters in the body too) or full (every weight)")
    t.add_argument("--epochs", type=int, default=3, metavar="N", help="passes over --data (3)")
    t.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (1e-3)")
    t.add_argument("--batch-size", type=int, default=32, metavar="B", help="examples per step (32)")
    t.add_argument("--lora-rank", type=int, default=8, metavar="R", help="--mode lora: adapter rank (8)")
    t.add_argument("--lora-alpha", type=float, default=16.0, metavar="A", help="--mode lora: scale alpha (16)")
    t.add_argument("--seed", type=int, default=0, help="order of the examples and the held-out split (0)")
    pr = actions.add_parser("predict", help="label text with a classifier", description=DESCRIPTION, **shared)
    pr.add_argument("path", metavar="DIR", help="the classifier's folder")
    inputs = pr.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--data", metavar="FILE.jsonl", help="texts to label")
    inputs.add_argument("--text", help="one text to label")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    return _train(args) if args.action == "train" else _predict(args)


def _train(args: argparse.Namespace) -> int:
    import random

    from lmforge.adapt.classify import ClassifierSpec, predict, read_examples, save_classifier, train_classifier
    from lmforge.adapt.classify_metrics import write_report

    if args.epochs < 1 or args.batch_size < 1 or not 0 < args.lr < math.inf:
        raise LmforgeError(f"--epochs and --batch-size must be at least 1 and --lr a positive number (got {args.epochs}, "
                           f"{args.batch_size}, {args.lr})")
    check_out_folder(args.out)
    if (Path(args.out) / "config.yaml").exists():  # its report.md and files beside its model would be replaced
        raise LmforgeError(f"'{args.out}' holds a run; pass --out with a new folder for the classifier")
    examples = read_examples(args.data)
    if args.test_data:
        test = read_examples(args.test_data, "--test-data")
    else:
        random.Random(args.seed).shuffle(examples)
        cut = max(1, len(examples) // 10)
        test, examples = examples[:cut], examples[cut:]
    labels = sorted({label for _, label in examples})
    unseen = sorted({label for _, label in test} - set(labels))
    if unseen:
        raise LmforgeError(f"test labels {unseen} never occur in --data; the classifier cannot learn them")
    spec = ClassifierSpec(base=str(Path(args.path).resolve()), labels=labels, mode=args.mode,
                          lora_rank=args.lora_rank, lora_alpha=args.lora_alpha)
    run, model = train_classifier(spec, examples, args.epochs, args.lr, args.batch_size, args.seed, args.device)
    out = Path(args.out)
    save_classifier(model, spec, out)
    print(write_report(labels, [label for _, label in test], predict(run, model, labels, [t for t, _ in test]), out))
    print(f"saved {out} (report.md, confusion.png)", file=sys.stderr)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from lmforge.adapt.classify import load_classifier, predict, read_fields

    texts = [args.text] if args.text is not None else [text for (text,) in read_fields(args.data, ("text",))]
    run, model, spec = load_classifier(args.path, args.device)
    if args.text is not None:
        print(predict(run, model, spec.labels, texts)[0])
        return 0
    for text, label in zip(texts, predict(run, model, spec.labels, texts)):
        print(json.dumps({"text": text, "label": label}, ensure_ascii=False))
    return 0
