"""`python peak_rss.py '{"model.n_embd": 128, ...}' VOCAB`: peak RSS above the baseline over three training steps.

Run in its own process, so nothing else the tests did is in its memory. A first,
tiny trainer warms up every lazy import and kernel, then the peak is reset
(/proc/self/clear_refs) and the baseline read; the trainer of the given config is
built (its weights count) and takes three `train_step`s: the peak of a step after
the first, when the optimizer state exists, is training's peak. Prints JSON.
"""

from __future__ import annotations

import gc
import json
import random
import sys
import tempfile
from pathlib import Path

import torch

from lmforge.config import Config
from lmforge.training import Trainer

QUIET = {"train.tensorboard": False, "train.progress": False, "train.device": "cpu", "sample.max_new_tokens": 0}


def status(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))


def trainer(values: dict, text: str, out: str) -> Trainer:
    return Trainer(Config.from_dict({}).updated({**QUIET, **values}), Path(out), text=text)


def main(values: dict, vocab: int) -> dict:
    torch.set_num_threads(1)
    rng = random.Random(0)
    chars = [chr(c) for c in range(0x100, 0x100 + vocab)]  # letters, not ASCII controls: a vocabulary of exactly `vocab`
    text = "".join(rng.choices(chars, k=100_000))
    tmp = tempfile.mkdtemp()
    warm = trainer({"model.n_layer": 1, "model.n_embd": 16, "model.n_head": 2, "model.block_size": 16,
                    "train.batch_size": 2, **{k: v for k, v in values.items() if not k.startswith(("model.", "train.batch"))}},
                   text, tmp + "/warm")
    for _ in range(2):
        warm.train_step()
    del warm
    gc.collect()
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")  # reset the peak (VmHWM) to the present
    base = status("VmRSS:")
    run = trainer(values, text, tmp + "/run")
    for _ in range(3):
        run.train_step()
    return {"peak_above_baseline": status("VmHWM:") - base, "vocab_size": run.tokenizer.vocab_size}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]), int(sys.argv[2]))))
