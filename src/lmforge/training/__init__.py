"""Training: the loop, optimizers, schedules, checkpoints, distributed training and logging."""

from lmforge.training.optim import lr_at
from lmforge.training.trainer import Trainer, TrainResult

__all__ = ["TrainResult", "Trainer", "lr_at"]
