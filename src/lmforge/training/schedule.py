"""Learning-rate schedules as pure functions of the step."""

from __future__ import annotations

import math

from lmforge.config import TrainConfig


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to `lr`, then cosine decay to `min_lr` at `decay_steps`, then flat.

    Warmup starts above zero (step 0 gets lr / warmup_steps), so the first update
    already moves the weights; a large step before Adam's moment estimates settle
    is what warmup avoids.
    """
    decay_steps = cfg.decay_steps or cfg.max_steps
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if step >= decay_steps:
        return cfg.min_lr
    progress = (step - cfg.warmup_steps) / max(1, decay_steps - cfg.warmup_steps)  # 0 → 1
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)
