"""What the training loop carries from step to step, and why it stopped.

Everything here goes into a checkpoint (`state_dict`), so a resumed run knows its
step, its best eval so far, its guards' counts and its generators' positions
exactly as the process that saved it did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch

from lmforge.training.guards import EarlyStopping, OverfitWatch


class StopReason(str, Enum):
    """Why `fit` ended; the `end` record of metrics.jsonl holds its value."""

    MAX_STEPS = "max_steps"
    COUNTED = "counted"  # a count-based model's one pass over the train split
    MAX_SECONDS = "max_seconds"
    EARLY_STOP = "early_stop"
    NON_FINITE = "non_finite"
    INTERRUPTED = "interrupted"


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
