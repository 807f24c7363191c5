"""`lmforge tokenizer train|inspect`: train a tokenizer, or see what one does to a text."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lmforge.commands.common import SHARED as FLAGS
from lmforge.errors import LmforgeError

HELP = "train or inspect a tokenizer"
DESCRIPTION = "Train a tokenizer (char, word or byte-level BPE) or see what one does to a text."

EXAMPLES = """examples:
  lmforge tokenizer train --kind bpe --data speeches/ --vocab-size 8000 --out bpe.json
  lmforge tokenizer train --kind word --data plays.txt --vocab-size 5000 --out word.json
  lmforge tokenizer inspect bpe.json --data held_out.txt
  lmforge tokenizer inspect gpt2-files/ --data held_out.txt --json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    shared = dict(formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    t = actions.add_parser("train", help="train a tokenizer and save it as one JSON file", parents=[FLAGS["text_field"]],
                           description="Train a tokenizer on a file, folder, glob or JSONL and save it as JSON.", **shared)
    t.add_argument("--kind", required=True, metavar="KIND", help="char | word | bpe")
    t.add_argument("--data", required=True, metavar="PATH", help="a text file, a folder, a glob or a JSONL file")
    t.add_argument("--vocab-size", type=int, default=0, metavar="N", help="word and bpe (default 8192)")
    t.add_argument("--out", required=True, metavar="FILE", help="the JSON file to write")
    t.add_argument("--unknown", default="replace", metavar="POLICY", help="char only: what unseen characters "
                   "become: replace (a space), error, or bytes (their UTF-8 bytes: every string round-trips)")
    i = actions.add_parser("inspect", help="tokens per byte, unknown rate, coverage, longest and frequent tokens",
                           parents=[FLAGS["text_field"], FLAGS["json"]],
                           description="Encode a text with a tokenizer and report what the vocabulary does to it.",
                           **shared)
    i.add_argument("file", metavar="FILE", help="a tokenizer JSON, a run or prepared directory, or GPT-2's files")
    i.add_argument("--data", required=True, metavar="PATH", help="a text file, a folder, a glob or a JSONL file")
    i.add_argument("--top", type=int, default=10, metavar="N", help="how many longest and most frequent tokens (10)")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.data.sources import find_files, iter_texts
    from lmforge.tokenizers import tokenizer_from_spec

    if args.action is None:
        raise LmforgeError("say what to do: `lmforge tokenizer train ...` or `lmforge tokenizer inspect ...`")
    if args.action == "train":
        from lmforge.tokenizers import train_tokenizer

        if Path(args.out).is_dir():
            raise LmforgeError(f"--out '{args.out}' is a folder; pass --out with the JSON file to write, e.g. "
                               f"{Path(args.out) / 'tokenizer.json'}")
        try:  # its folder, made now: not a traceback after the training
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LmforgeError(f"--out '{args.out}': cannot make its folder ({exc.strerror}); pass --out in a folder "
                               "you can write to") from None
        files = find_files(args.data)
        start = time.perf_counter()
        blank = True  # only whitespace went by, if any text: word and bpe would train on nothing

        def texts():
            nonlocal blank
            for text in iter_texts(files, args.text_field):
                blank = blank and text.isspace()
                yield text

        if args.unknown != "replace" and args.kind != "char":
            raise LmforgeError(f"--unknown applies to --kind char only ({args.kind} needs no policy); leave it out")
        tok = train_tokenizer(args.kind, texts(), args.vocab_size, documents=True, unknown=args.unknown)
        if blank:
            raise LmforgeError(f"--data '{args.data}' holds no text (empty or only whitespace); pass --data with text "
                               "to train on")
        tok.save(args.out)
        specials = ", ".join(f"{r}={i}" for r, i in tok.specials.items()) or "none"
        print(f"trained a {tok.kind} tokenizer: {tok.vocab_size:,} tokens (specials: {specials}) in "
              f"{time.perf_counter() - start:.1f} s → {args.out}")
        return 0
    if args.top < 1:
        raise LmforgeError(f"--top must be at least 1, not {args.top}")
    from lmforge.tokenizers.inspect import inspect_tokenizer

    tok = tokenizer_from_spec(args.file, flag="FILE")
    report = inspect_tokenizer(tok, iter_texts(find_files(args.data), args.text_field), top=args.top)
    if report.bytes == 0:
        raise LmforgeError(f"--data '{args.data}' holds no text; pass a file with text in it")
    print(json.dumps(report.to_dict(), ensure_ascii=False) if args.json else report.format())
    return 0
