"""How long an n-gram takes to count a corpus, and what each order buys.

Fits n-grams of several orders on the train split (first 90%) of a text (default:
the whole built-in corpus, about 12 M characters) and prints, per order, the
counting time, the stored probabilities and the val loss on the first
`--val-chars` characters of the val split (each position given its full n-1 context).

    python benchmarks/ngram_counting.py                          # built-in corpus, orders 2..6
    python benchmarks/ngram_counting.py --data ../shared/data/tinyshakespeare.txt --orders 3,5,7,9
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from lmforge.config import ModelConfig
from lmforge.corpus import load_corpus
from lmforge.models import build_model
from lmforge.tokenizers import train_tokenizer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="a text file (default: the built-in corpus)")
    parser.add_argument("--orders", default="2,3,4,5,6")
    parser.add_argument("--smoothing", default="modified_kn", choices=["modified_kn", "kn"])
    parser.add_argument("--val-chars", type=int, default=200_000)
    args = parser.parse_args()

    start = time.perf_counter()
    text, name = load_corpus(args.data)
    tokenizer = train_tokenizer("char", text)
    ids = tokenizer.encode_array(text)
    n_train = int(len(ids) * 0.9)
    train, val = ids[:n_train], ids[n_train : n_train + args.val_chars + 1]
    print(f"{name}: {len(text):,} characters, vocabulary {tokenizer.vocab_size}, train {len(train):,} tokens; "
          f"read and encoded in {time.perf_counter() - start:.1f} s; torch threads {torch.get_num_threads()}")
    print("\n| order | count s | stored probabilities | val loss (nats/char) | val bits/char |\n|---:|---:|---:|---:|---:|")
    for order in (int(o) for o in args.orders.split(",")):
        model = build_model(ModelConfig(family="ngram", ngram_order=order, ngram_smoothing=args.smoothing),
                            tokenizer.vocab_size)
        start = time.perf_counter()
        model.fit_counts(train)
        seconds = time.perf_counter() - start
        x = torch.from_numpy(val.astype(np.int64))[None]
        with torch.inference_mode():
            logp = torch.log_softmax(model(x[:, :-1]), -1).gather(-1, x[:, 1:, None])
        loss = -logp.mean().item()
        print(f"| {order} | {seconds:.2f} | {model.num_params():,} | {loss:.4f} | {loss / math.log(2):.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
