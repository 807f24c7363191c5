"""What a run writes as it goes: metrics.jsonl, TensorBoard events, samples.txt and curves.png.

metrics.jsonl is the source of truth: one JSON object per event, appended and flushed as it happens;
TensorBoard mirrors its numbers, curves.png draws them. Only rank 0 writes. A resumed run first rewinds
what a crashed process logged after the checkpoint it redoes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.training.run_dir import CONFIG_FILE, METRICS_FILE, TOKENIZER_FILE, atomic_write, check_out_dir

SAMPLES_FILE = "samples.txt"
CURVES_FILE = "curves.png"
CURVES_EVERY_S = 20.0  # a redraw costs about half a second of matplotlib: at most this often, and at the end
# metrics.jsonl event → the keys TensorBoard plots, each under "event/key"
SCALARS = {"train": ("loss", "lr", "grad_norm", "tokens_per_s", "mfu"),
           "eval": ("train_loss", "val_loss", "val_ppl", "val_bpb")}
_SAMPLE_HEADER = re.compile(r"^=== step (\d+) ", re.MULTILINE)
_IMPORT_TIME = time.time()


def process_start_time() -> float:
    """Wall-clock time this process started (from /proc on Linux), so `elapsed_s` counts
    interpreter start-up, imports and data loading too, not just the training loop."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        start_ticks = int(fields[19])  # field 22 of stat: start time in clock ticks after boot
        return time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _IMPORT_TIME


PROCESS_START = process_start_time()


def elapsed_s() -> float:
    return time.time() - PROCESS_START


class MetricsLog:
    def __init__(self, path: Path):
        self.file = open(path, "a", encoding="utf-8")

    def write(self, event: str, **values: Any) -> None:
        self.file.write(json.dumps({"event": event, **values}) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every record. A last line without its newline that is not JSON is left out: a process killed mid-write
    tore it, and a resume drops it too; a bad line anywhere else still raises (the file is damaged)."""
    if not path.is_file():
        return []
    try:
        *lines, tail = path.read_text(encoding="utf-8").split("\n")  # tail is "" when the last line is whole
        records = [json.loads(line) for line in lines if line.strip()]
    except ValueError:  # not UTF-8, or a line that is not JSON
        raise LmforgeError(f"'{path}' is not JSON lines (one object per line); restore it from the run") from None
    with contextlib.suppress(json.JSONDecodeError):
        records += [json.loads(tail)] if tail.strip() else []
    return records


def rewind_metrics(path: Path, step: int) -> int:
    """Keep the records up to `step` (a resumed run starts at step + 1), less earlier `end` records (the run did
    not end there) and a torn last line; returns how many were dropped."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None  # torn
        if record is None or record.get("event") == "end" or record.get("step", 0) > step:
            dropped += 1
        else:
            kept.append(line + "\n")
    atomic_write(path, lambda tmp: tmp.write_text("".join(kept), encoding="utf-8"))
    return dropped


# samples.txt is rewritten whole through `atomic_write` at each eval instead of appended to: a process killed
# mid-append would leave a torn section, and one torn inside its `=== step N` header is invisible to
# `rewind_samples`. The file holds one sample per eval, so rewriting it costs nothing next to the eval.

def _read_samples(path: Path) -> str:
    """The file as written (newline="": a sampled carriage return stays one, not a line break)."""
    if not path.is_file():
        return ""
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def _write_samples(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline=""))


def append_sample(path: Path, step: int, val_loss: float, text: str) -> None:
    _write_samples(path, _read_samples(path) + f"=== step {step} · val loss {val_loss:.4f}\n{text}\n\n")


def rewind_samples(path: Path, step: int) -> None:
    """Cut the sections of steps after `step` (written by a process that crashed before its next checkpoint)."""
    text = _read_samples(path)
    cut = next((m.start() for m in _SAMPLE_HEADER.finditer(text) if int(m.group(1)) > step), None)
    if cut is not None:
        _write_samples(path, text[:cut])


def draw_curves(records: list[dict[str, Any]], path: Path) -> None:
    """curves.png: train/val loss, learning rate and gradient norm against the step."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    train = [r for r in records if r["event"] == "train"]
    evals = [r for r in records if r["event"] == "eval"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.13, top=0.92, wspace=0.3)  # tight_layout costs more than the plot
    ax = axes[0]
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], alpha=0.4, label="train (batch)")
    ax.plot([r["step"] for r in evals], [r["train_loss"] for r in evals], "o-", label="train")
    ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-", label="val")
    ax.set(title="loss (nats/token)", xlabel="step")
    ax.legend()
    axes[1].plot([r["step"] for r in train], [r["lr"] for r in train])
    axes[1].set(title="learning rate", xlabel="step")
    normed = [r for r in train if r["grad_norm"] > 0]  # a model fitted from counts has no gradient
    axes[2].plot([r["step"] for r in normed], [r["grad_norm"] for r in normed])
    axes[2].set(title="gradient norm (before clipping)", xlabel="step", yscale="log")
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)


class RunLogs:
    """Everything above, for one run, written by rank 0 only."""

    def __init__(self, out_dir: Path, is_main: bool):
        self.out_dir, self.is_main = out_dir, is_main
        self.log: MetricsLog | None = None
        self.tensorboard = None
        self.curves_drawn_at, self.curves_stale = time.perf_counter(), False

    def open(self, cfg, tokenizer, resume_step: int | None) -> None:
        """A new run saves its tokenizer; a resumed one forgets what was logged after its checkpoint's step."""
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
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: hide the events a crashed process wrote after the checkpoint this run resumes from
            self.tensorboard = SummaryWriter(str(self.out_dir / "tensorboard"),
                                             purge_step=None if resume_step is None else resume_step + 1)

    def write(self, event: str, **values: Any) -> dict[str, Any]:
        """The record of one event, written to metrics.jsonl and TensorBoard (rank 0)."""
        if self.log is not None:
            self.log.write(event, **values)
        if self.tensorboard is not None:
            for key in SCALARS.get(event, ()):
                value = values.get(key)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.tensorboard.add_scalar(f"{event}/{key}", value, global_step=values["step"])
            if event == "eval":
                self.tensorboard.flush()
        return {"event": event, **values}

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
