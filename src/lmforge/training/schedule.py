"""Learning-rate schedules as pure functions of the step.

Every schedule starts with the same linear warmup, then shapes the rest:

    constant  lr until the end
    cosine    half a cosine from lr down to min_lr at decay_steps
    linear    a straight line from lr down to min_lr at decay_steps
    wsd       warmup, stable at lr, then a linear decay to min_lr over the last
              decay_fraction of the steps before decay_steps

After decay_steps (0: max_steps) the rate stays at min_lr. Being pure functions
of the step, a resumed run needs only the step to continue the schedule exactly.
"""

from __future__ import annotations

import math

from lmforge.config import TrainConfig


def lr_at(step: int, cfg: TrainConfig) -> float:
    """The learning rate of optimizer step `step` (0-based).

    Warmup starts above zero (step 0 gets lr / warmup_steps), so the first update
    already moves the weights; a large step before Adam's moment estimates settle
    is what warmup avoids.
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    return cfg.min_lr + lr_factor(step, cfg) * (cfg.lr - cfg.min_lr)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Where the rate sits after warmup: 1 at lr, 0 at min_lr."""
    end = cfg.decay_steps or cfg.max_steps
    if cfg.schedule == "constant":
        return 1.0
    if step >= end:
        return 0.0
    if cfg.schedule == "wsd":
        decay_start = max(cfg.warmup_steps, end - round(cfg.decay_fraction * end))
        if step < decay_start:
            return 1.0
        return 1.0 - (step - decay_start) / max(1, end - decay_start)
    progress = (step - cfg.warmup_steps) / max(1, end - cfg.warmup_steps)  # 0 → 1
    if cfg.schedule == "linear":
        return 1.0 - progress
    if cfg.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule '{cfg.schedule}'")
