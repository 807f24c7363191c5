"""`lmforge prepare`: tokenize a corpus once into memory-mapped train/val shards."""

from __future__ import annotations

import argparse
import sys

from lmforge.commands.common import unescape

HELP = "tokenize a corpus into train/val token shards for `lmforge train --data DIR`"
DESCRIPTION = ("Tokenize every document of a file, folder, glob or JSONL into memory-mapped train/val shards plus "
               "an index.json. Each document ends with EOS and goes to train or val by a hash of its number and "
               "--seed; one text file alone splits at its last --val-fraction.")
SHARED = ("text_field", "separator")

EXAMPLES = """examples:
  lmforge prepare --data speeches/ --tokenizer bpe --vocab-size 8000 --out data/speeches
  lmforge prepare --data 'books/**/*.txt' --tokenizer my_bpe.json --out data/books
  lmforge prepare --data corpus.jsonl --text-field body --tokenizer gpt2-files/ --out data/corpus
  lmforge prepare --data plays.txt --separator '\\n\\n' --tokenizer char --out data/plays
  lmforge train --data data/speeches --out runs/speeches          # train on the prepared shards"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="PATH",
                   help="a text file, a folder, a glob ('data/*.txt') or a JSONL file")
    p.add_argument("--tokenizer", required=True, metavar="SPEC", help="char | word | bpe (trained on --data), a "
                   "tokenizer JSON, a run or prepared directory, or a folder with GPT-2's encoder.json and vocab.bpe")
    p.add_argument("--out", required=True, metavar="DIR", help="the directory to write")
    p.add_argument("--vocab-size", type=int, default=0, metavar="N", help="when --tokenizer is word or bpe (default 8192)")
    p.add_argument("--val-fraction", type=float, default=0.1, metavar="F",
                   help="share of documents for val; one text file alone: its last share (0.1)")
    p.add_argument("--seed", type=int, default=1337, metavar="S", help="seed of the train/val split (1337)")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="encoding processes (default: one per core; 1 for char)")
    p.add_argument("--shard-tokens", type=int, default=100_000_000, metavar="N", help="tokens per shard (100,000,000)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.data.inputs import Inputs
    from lmforge.data.prepare import PrepareOptions, prepare_inputs
    from lmforge.tokenizers import KINDS, tokenizer_from_spec

    options = PrepareOptions(text_field=args.text_field, separator=unescape(args.separator),
                             val_fraction=args.val_fraction, seed=args.seed, workers=args.workers,
                             shard_tokens=args.shard_tokens, progress=not args.no_progress).validate()
    inputs = Inputs(args.data, options.text_field, options.separator, options.val_fraction, options.seed)
    if args.tokenizer in KINDS and sys.stderr.isatty() and not args.no_progress:  # like the progress bar
        print(f"training a {args.tokenizer} tokenizer on {args.data} first", file=sys.stderr)
    # as `train --data` does: characters from all the text, words and BPE merges from the train documents only
    tokenizer = tokenizer_from_spec(args.tokenizer, lambda: inputs.tokenizer_texts(args.tokenizer), args.vocab_size,
                                    documents=inputs.documents)
    result = prepare_inputs(inputs, tokenizer, args.out, options)
    print(result.summary())
    return 0
