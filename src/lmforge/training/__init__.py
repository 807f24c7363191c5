"""Training: the loop, optimizer, schedule, run directory and metrics."""

from lmforge.training.schedule import lr_at
from lmforge.training.trainer import Trainer, TrainResult, train

__all__ = ["TrainResult", "Trainer", "lr_at", "train"]
