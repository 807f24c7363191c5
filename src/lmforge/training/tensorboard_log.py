"""TensorBoard event files in RUN_DIR/tensorboard, mirroring the numbers of metrics.jsonl.

`tensorboard --logdir runs` then shows every run's curves side by side. metrics.jsonl
stays the source of truth; this is a view of it for people who live in TensorBoard.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# metrics.jsonl event → the keys worth plotting, each under "event/key"
SCALARS = {
    "train": ("loss", "lr", "grad_norm", "tokens_per_s", "mfu"),
    "eval": ("train_loss", "val_loss", "val_ppl", "val_bpb"),
}


class TensorBoardLog:
    def __init__(self, folder: Path, purge_step: int | None = None):
        """`purge_step`: on resume, hide events a crashed process wrote at this step and after."""
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder), purge_step=purge_step)

    def write(self, record: dict[str, Any]) -> None:
        for key in SCALARS.get(record.get("event", ""), ()):
            value = record.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"{record['event']}/{key}", value, global_step=record["step"])
        if record.get("event") == "eval":
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()
