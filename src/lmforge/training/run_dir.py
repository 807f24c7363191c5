"""The run directory's files: config, tokenizer and weights, each written atomically.

`atomic_write` is the one way anything in a run directory is written (weights, checkpoints, samples, curves,
a rewound metrics.jsonl), so a run killed mid-write leaves the previous file intact, never half of a new one.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_file, save_model
from torch import nn

from lmforge.errors import LmforgeError
from lmforge.paths import check_out_folder

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
TOKENIZER_FILE = "tokenizer.json"
METRICS_FILE = "metrics.jsonl"


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """`write(temporary path)`, then fsync it, rename it over `path` and fsync the folder (so the rename lasts)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # some filesystems cannot fsync a folder
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_weights(model: nn.Module, path: Path) -> None:
    atomic_write(path, lambda tmp: save_model(model, str(tmp)))  # drops the duplicate of a tied weight


def save_state_dict(state: dict[str, torch.Tensor], model: nn.Module, path: Path) -> None:
    """Like `save_weights`, from a full state dict of `model` (gathered from shards under FSDP): a tied weight
    appears under each of its names; only the first is kept, as `save_weights` does, and `load_weights` ties it."""
    first = {name for name, _ in model.named_parameters()}  # one name per distinct parameter
    tied = {name for name, _ in model.named_parameters(remove_duplicate=False)} - first
    tensors = {k: v.contiguous() for k, v in state.items() if k not in tied}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))


def load_weights(model: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise LmforgeError(f"'{path.parent}' has no {path.name}; train a model there with `lmforge train --out {path.parent}`")
    try:
        missing, unexpected = load_model(model, str(path), strict=False)
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        mismatch = re.search(r"size mismatch for [\w.]+", str(exc))  # e.g. a tokenizer.json of another vocabulary
        if mismatch:
            raise LmforgeError(f"'{path}' does not match the model that config.yaml and tokenizer.json describe "
                               f"({mismatch.group()}); the files come from different runs") from None
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise LmforgeError(f"'{path}' is corrupt or truncated ({reason}); restore it or retrain the run") from None
    if missing or unexpected:
        raise LmforgeError(f"'{path}' does not match the model in config.yaml (missing {sorted(missing)[:3]}, "
                           f"unexpected {sorted(unexpected)[:3]}); the two files come from different runs")


def check_run_dir(path: Path) -> None:
    if path.is_file():  # e.g. the run's model.safetensors, given for the run
        raise LmforgeError(f"'{path}' is a file, not a run directory; pass the folder written by `lmforge train --out`")
    if not path.is_dir():
        raise LmforgeError(f"run directory '{path}' does not exist; train one with `lmforge train --out {path}`")
    for name in (CONFIG_FILE, TOKENIZER_FILE, MODEL_FILE):
        if not (path / name).is_file():
            raise LmforgeError(f"'{path}' has no {name}, so it holds no trained model; train one with "
                               f"`lmforge train --out {path}` (a run saves its model at its first eval)")


def check_out_dir(out_dir: Path) -> None:
    """Refuse to train over an earlier run: its model would be overwritten; or into a file."""
    check_out_folder(out_dir, "a new folder for the run")
    if (out_dir / MODEL_FILE).exists() or (out_dir / METRICS_FILE).exists():
        raise LmforgeError(f"'{out_dir}' already holds a run; choose a new --out (or delete that folder), "
                           f"or continue it with --resume {out_dir}")
