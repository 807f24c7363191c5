"""Reading and writing the run directory: config, tokenizer and weights.

Files are written atomically (a temporary file, then a rename), so a run that is
killed mid-write leaves the previous file intact, never half of a new one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_file, save_model
from torch import nn

from lmforge.errors import LmforgeError

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
TOKENIZER_FILE = "tokenizer.json"


def save_weights(model: nn.Module, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_model(model, str(tmp))  # drops the duplicate of a tied weight
    _commit(tmp, path)


def save_state_dict(state: dict[str, torch.Tensor], model: nn.Module, path: Path) -> None:
    """Like `save_weights`, from a full state dict of `model` (gathered from shards under FSDP).

    A tied weight appears under each of its names; only the first is kept, as
    `save_weights` does, and `load_weights` ties it back.
    """
    first = {name for name, _ in model.named_parameters()}  # one name per distinct parameter
    tied = {name for name, _ in model.named_parameters(remove_duplicate=False)} - first
    tensors = {k: v.contiguous() for k, v in state.items() if k not in tied}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    _commit(tmp, path)


def _commit(tmp: Path, path: Path) -> None:
    """Flush a finished temporary file to disk, then rename it over `path` in one step."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
        raise LmforgeError(
            f"'{path}' does not match the model in config.yaml (missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]}); the two files come from different runs"
        )


def check_run_dir(path: Path) -> None:
    if not path.is_dir():
        raise LmforgeError(f"run directory '{path}' does not exist; train one with `lmforge train --out {path}`")
    for name in (CONFIG_FILE, TOKENIZER_FILE, MODEL_FILE):
        if not (path / name).is_file():
            raise LmforgeError(
                f"'{path}' has no {name}, so it holds no trained model; train one with `lmforge train --out {path}`"
                " (a run saves its model at its first eval)"
            )
