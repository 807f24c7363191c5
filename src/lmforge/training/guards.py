"""Watching evals: early stopping on val loss, and a warning when the model starts to overfit.

Both are small state machines fed one eval at a time, with `state_dict` so a
resumed run carries on counting where the checkpoint left off.
"""

from __future__ import annotations

import math
from typing import Any

from lmforge.errors import LmforgeError


class EarlyStopping:
    """Stop after `patience` evals in a row without a new best val loss (patience 0: never)."""

    def __init__(self, patience: int):
        self.patience = patience
        self.evals_since_best = 0

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
        """Record an eval; a warning sentence when it looks like overfitting, else None."""
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


class Diverged(LmforgeError):
    """The loss was not finite for `max_bad_steps` steps in a row."""


class NonFiniteSteps:
    """Count non-finite steps in a row; `limit` in a row mean the run diverged.

    With a float16 gradient scaler, a finite loss with a non-finite gradient is an overflow the
    scaler answers by lowering its scale, not a sign of divergence: it is reported, not counted.
    """

    def __init__(self, limit: int, scaler_enabled: bool):
        self.limit, self.scaler_enabled = limit, scaler_enabled
        self.in_row = 0

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
