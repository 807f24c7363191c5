"""What the training loop carries: each step's figures (`StepStats`), its state and the guards that watch it,
and why it stopped. The state and guards go into a checkpoint (`state_dict`), so a resumed run counts on
exactly where the process that saved it was."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

import torch

from lmforge.errors import LmforgeError


class StopReason(str, Enum):
    """Why `fit` ended; the `end` record of metrics.jsonl holds its value."""
    MAX_STEPS = "max_steps"
    COUNTED = "counted"  # a count-based model's one pass over the train split
    MAX_SECONDS = "max_seconds"
    EARLY_STOP = "early_stop"
    NON_FINITE = "non_finite"
    INTERRUPTED = "interrupted"


class StepStats(NamedTuple):
    """One optimizer step's figures, left on the device until the loop reads them (trainer.py says why)."""
    step: int  # the step count after it
    nats: torch.Tensor  # the loss summed over the global batch's real targets
    targets: int
    grad_norm: torch.Tensor  # before clipping
    lr: float

    @property
    def loss(self) -> float:
        """The mean loss per target (a host sync)."""
        return float(self.nats) / self.targets


class Diverged(LmforgeError):
    """The loss was not finite for `max_bad_steps` steps in a row."""


class EarlyStopping:
    """Stop after `patience` evals in a row without a new best val loss (patience 0: never)."""

    def __init__(self, patience: int):
        self.patience, self.evals_since_best = patience, 0

    def update(self, improved: bool) -> bool:
        """Record an eval (did it set a new best val loss?); True when the run should stop."""
        self.evals_since_best = 0 if improved else self.evals_since_best + 1
        return self.patience > 0 and self.evals_since_best >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"evals_since_best": self.evals_since_best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.evals_since_best = state["evals_since_best"]


class OverfitWatch:
    """Notice val loss rising while train loss falls between two evals: the model is memorizing its data."""

    def __init__(self) -> None:
        self.previous: tuple[float, float] | None = None  # (train_loss, val_loss) of the last eval

    def update(self, train_loss: float, val_loss: float, best_step: int, best_val_loss: float) -> str | None:
        """Record an eval; a warning when it looks like overfitting."""
        previous, self.previous = self.previous, (train_loss, val_loss)
        if previous is None or not (val_loss > previous[1] and train_loss < previous[0]):
            return None
        return (f"val loss rose from {previous[1]:.4f} to {val_loss:.4f} while train loss fell from {previous[0]:.4f} "
                f"to {train_loss:.4f}: the model may be overfitting; the best model (val loss {best_val_loss:.4f}) "
                f"is from step {best_step} and is the one kept in model.safetensors")

    def state_dict(self) -> dict[str, Any]:
        return {"previous": list(self.previous) if self.previous else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.previous = tuple(state["previous"]) if state["previous"] else None


class NonFiniteSteps:
    """Count non-finite steps in a row; `limit` in a row mean the run diverged. Under a float16 gradient scaler
    a finite loss with a non-finite gradient is an overflow the scaler answers: reported, not counted."""

    def __init__(self, limit: int, scaler_enabled: bool):
        self.limit, self.scaler_enabled, self.in_row = limit, scaler_enabled, 0

    def update(self, loss: float, grad_norm: float) -> str | None:
        """Record a step; why it was skipped, or None when it was finite."""
        if math.isfinite(loss) and math.isfinite(grad_norm):
            self.in_row = 0
            return None
        if not (self.scaler_enabled and math.isfinite(loss)):
            self.in_row += 1
        return "non-finite loss" if not math.isfinite(loss) else "non-finite gradient"

    @property
    def diverged(self) -> bool:
        return self.in_row >= self.limit


@dataclass
class LoopState:
    """The step, the tokens trained on, the best eval so far, the eval guards and the two generators."""

    batch_gen: torch.Generator  # draws the training batches: the whole data position
    sample_gen: torch.Generator  # draws the samples written at each eval
    early_stopping: EarlyStopping
    overfit_watch: OverfitWatch = field(default_factory=OverfitWatch)
    step: int = 0
    tokens_seen: int = 0  # real targets trained on (padding excluded), over all ranks
    elapsed_before: float = 0.0  # seconds spent by earlier processes of a resumed run
    best_val_loss: float = math.inf
    best_step: int = -1
    best: dict[str, Any] | None = None  # the eval record of the best step

    @classmethod
    def start(cls, seed: int, device: torch.device, patience: int) -> LoopState:
        return cls(torch.Generator().manual_seed(seed), torch.Generator(device=device).manual_seed(seed),
                   EarlyStopping(patience))

    def improve(self, val_loss: float) -> bool:
        """Record an eval's val loss; True when it is a new best."""
        if val_loss < self.best_val_loss:
            self.best_val_loss, self.best_step = val_loss, self.step
            return True
        return False

    def state_dict(self, elapsed_now: float) -> dict[str, Any]:
        return {
            "step": self.step, "tokens_seen": self.tokens_seen, "elapsed_s": self.elapsed_before + elapsed_now,
            "best_val_loss": self.best_val_loss, "best_step": self.best_step, "best": self.best,
            "early_stopping": self.early_stopping.state_dict(), "overfit_watch": self.overfit_watch.state_dict(),
            "batch_gen": self.batch_gen.get_state(), "sample_gen": self.sample_gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any], tokens_per_step: int) -> None:
        self.step, self.elapsed_before = state["step"], state["elapsed_s"]
        # a checkpoint from before tokens_seen was saved: steps × batch, exact for windows (no padding)
        self.tokens_seen = state.get("tokens_seen", self.step * tokens_per_step)
        self.best_val_loss, self.best_step, self.best = state["best_val_loss"], state["best_step"], state["best"]
        self.early_stopping.load_state_dict(state["early_stopping"])
        self.overfit_watch.load_state_dict(state["overfit_watch"])
        self.batch_gen.set_state(state["batch_gen"])
        self.sample_gen.set_state(state["sample_gen"])
