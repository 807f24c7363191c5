"""What a run writes as it goes: metrics.jsonl, TensorBoard events, samples.txt and curves.png.

Only rank 0 writes; on other ranks every method is a no-op, so the loop calls them
without asking which rank it is.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.training.metrics import MetricsLog, read_metrics, rewind_metrics
from lmforge.training.plots import draw_curves
from lmforge.training.run_dir import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE
from lmforge.training.samples import append_sample, rewind_samples

METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.txt"
CURVES_FILE = "curves.png"
CURVES_EVERY_S = 20.0  # a redraw costs about half a second of matplotlib: at most this often, and at the end


def check_out_dir(out_dir: Path) -> None:
    """Refuse to train over an earlier run: its model would be overwritten."""
    if (out_dir / MODEL_FILE).exists() or (out_dir / METRICS_FILE).exists():
        raise LmforgeError(f"'{out_dir}' already holds a run; choose a new --out (or delete that folder), "
                           f"or continue it with --resume {out_dir}")


class RunLogs:
    def __init__(self, out_dir: Path, is_main: bool):
        self.out_dir, self.is_main = out_dir, is_main
        self.log: MetricsLog | None = None
        self.tensorboard = None
        self.curves_drawn_at, self.curves_stale = time.perf_counter(), False

    def open(self, cfg, tokenizer, resume_step: int | None) -> None:
        """Start writing: a new run saves its tokenizer; a resumed one forgets what a crashed process logged after
        the checkpoint it redoes (`resume_step`)."""
        if not self.is_main:
            return
        if resume_step is not None:
            rewind_metrics(self.out_dir / METRICS_FILE, resume_step)
            rewind_samples(self.out_dir / SAMPLES_FILE, resume_step)
        else:
            check_out_dir(self.out_dir)
            self.out_dir.mkdir(parents=True, exist_ok=True)
            tokenizer.save(self.out_dir / TOKENIZER_FILE)
        cfg.save(self.out_dir / CONFIG_FILE)
        self.log = MetricsLog(self.out_dir / METRICS_FILE)
        if cfg.train.tensorboard:
            from lmforge.training.tensorboard_log import TensorBoardLog

            purge = None if resume_step is None else resume_step + 1
            self.tensorboard = TensorBoardLog(self.out_dir / "tensorboard", purge_step=purge)

    def write(self, event: str, **values: Any) -> dict[str, Any]:
        """The record of one event, written to metrics.jsonl and TensorBoard (rank 0)."""
        record = {"event": event, **values}
        if self.log is not None:
            self.log.write(event, **values)
        if self.tensorboard is not None:
            self.tensorboard.write(record)
        return record

    def sample(self, step: int, val_loss: float, text: str) -> None:
        if self.is_main:
            append_sample(self.out_dir / SAMPLES_FILE, step, val_loss, text)

    def draw_curves(self, force: bool = False) -> None:
        """Redraw curves.png from metrics.jsonl, unless it was drawn less than CURVES_EVERY_S ago (then later)."""
        if not self.is_main:
            return
        if not force and time.perf_counter() - self.curves_drawn_at < CURVES_EVERY_S:
            self.curves_stale = True
            return
        draw_curves(read_metrics(self.out_dir / METRICS_FILE), self.out_dir / CURVES_FILE)
        self.curves_drawn_at, self.curves_stale = time.perf_counter(), False

    def close(self) -> None:
        for log in (self.log, self.tensorboard):
            if log is not None:
                log.close()
        self.log = self.tensorboard = None
        if self.curves_stale:
            self.draw_curves(force=True)
