"""Helpers for evaluation tests: hand-made models whose outputs are known exactly,
and run directories with a synthetic metrics.jsonl."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from lmforge.config import Config
from lmforge.models.base import LanguageModel
from lmforge.run import Run
from lmforge.tokenizers import CharTokenizer

CYCLE = " abcdefgh"  # the cycle model's vocabulary, in id order: ' '→a→b→…→h→' '


class CycleModel(LanguageModel):
    """Predicts the next id in a cycle, (x + 1) % V, with logit `strength` (all other logits 0)."""

    family = "cycle"

    def __init__(self, vocab_size: int, strength: float = 10.0):
        super().__init__()
        self.vocab_size, self.strength = vocab_size, strength

    def forward(self, ids):
        return self.strength * torch.nn.functional.one_hot((ids + 1) % self.vocab_size, self.vocab_size).float()


@pytest.fixture
def cycle_run(tmp_path) -> Run:
    """A Run around the cycle model: the greedy continuation of 'a' is 'bcdefgh abcdefgh ab…'."""
    tok = CharTokenizer(list(CYCLE))
    return Run(tmp_path, Config(), tok, CycleModel(tok.vocab_size), torch.device("cpu"))


def eval_record(step: int, train_loss: float, val_loss: float) -> dict:
    return {"event": "eval", "step": step, "elapsed_s": step / 10, "tokens_seen": step * 256, "train_loss": train_loss,
            "val_loss": val_loss, "val_ppl": 2.718281828459045 ** val_loss, "val_bpb": val_loss / 0.6931, "lr": 1e-3}


@pytest.fixture
def synthetic_run(tiny_run, tmp_path):
    """make(name, curve): a copy of the real tiny run whose metrics.jsonl holds the evals in `curve`."""

    def make(name: str, curve: list[tuple[int, float, float]]) -> Path:
        return write_synthetic_run(tiny_run, tmp_path / name, curve)

    return make


def write_synthetic_run(tiny_run: Path, dest: Path, curve: list[tuple[int, float, float]]) -> Path:
    """A copy of a real tiny run whose metrics.jsonl is replaced by (step, train_loss, val_loss) evals."""
    shutil.copytree(tiny_run, dest)
    for stale in ("report.html", "report.md", "evals"):
        p = dest / stale
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    records = [{"event": "start", "elapsed_s": 1.0, "params": 14464, "device": "cpu", "dtype": "float32",
                "vocab_size": 33, "train_tokens": 5364, "val_tokens": 596}]
    for step, train, val in curve:
        records.append({"event": "train", "step": step, "elapsed_s": step / 10, "tokens_seen": step * 256,
                        "loss": train, "lr": 1e-3, "grad_norm": 0.5, "tokens_per_s": 1000.0})
        records.append(eval_record(step, train, val))
    best = min(curve, key=lambda c: c[2])
    records.append({"event": "end", "step": curve[-1][0], "elapsed_s": curve[-1][0] / 10, "reason": "max_steps",
                    "best_step": best[0], "best_val_loss": best[2]})
    (dest / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return dest
