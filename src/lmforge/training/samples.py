"""`samples.txt`: the text sampled at each eval, one section per eval step."""

from __future__ import annotations

import os
import re
from pathlib import Path

_HEADER = re.compile(r"^=== step (\d+) ", re.MULTILINE)


def append_sample(path: Path, step: int, val_loss: float, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"=== step {step} · val loss {val_loss:.4f}\n{text}\n\n")


def rewind_samples(path: Path, step: int) -> None:
    """Cut the sections of steps after `step` (written by a process that crashed before its next checkpoint)."""
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    cut = next((m.start() for m in _HEADER.finditer(text) if int(m.group(1)) > step), None)
    if cut is None:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text[:cut], encoding="utf-8")
    os.replace(tmp, path)
