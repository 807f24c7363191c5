"""Plain helpers shared by the training tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch


def records(run_dir: Path, event: str | None = None) -> list[dict]:
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if event is None or r["event"] == event]


def checkpoint_state(run_dir: Path, step: int) -> dict:
    return torch.load(Path(run_dir) / "checkpoints" / f"step-{step:08d}.pt", weights_only=True)


def assert_same_tensors(a, b, path="state"):
    """Bitwise equality of two nested structures of tensors and plain values."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same_tensors(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def scripted_evals(trainer, losses):
    """Replace a Trainer's real eval by a script of (train_loss, val_loss) pairs."""
    script = iter(losses)

    def evaluate():
        train, val = next(script)
        return {"train_loss": train, "val_loss": val, "val_ppl": math.exp(val), "val_bpb": val / math.log(2)}

    trainer.evaluate = evaluate


def watch_unchanged(trainer) -> dict[int, bool]:
    """Filled as `trainer` fits: step → whether that step left every weight as it was (a skipped step does)."""
    unchanged, step = {}, trainer.train_step

    def spy():
        before = [p.detach().clone() for p in trainer.model.parameters()]
        out = step()
        unchanged[trainer.step] = all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
        return out

    trainer.train_step = spy
    return unchanged
