"""`samples.txt`: the text sampled at each eval, one section per eval step.

The file is rewritten whole through a temporary file and a rename at each eval
instead of appended to: a process killed mid-append would leave a torn section,
and one torn inside its `=== step N` header is invisible to `rewind_samples`, so
the resumed run's sections would follow the fragment. The file is small (one
sample per eval), so rewriting it costs nothing next to the eval itself.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_HEADER = re.compile(r"^=== step (\d+) ", re.MULTILINE)


def append_sample(path: Path, step: int, val_loss: float, text: str) -> None:
    before = _read(path) if path.is_file() else ""
    _replace(path, before + f"=== step {step} · val loss {val_loss:.4f}\n{text}\n\n")


def rewind_samples(path: Path, step: int) -> None:
    """Cut the sections of steps after `step` (written by a process that crashed before its next checkpoint)."""
    if not path.is_file():
        return
    text = _read(path)
    cut = next((m.start() for m in _HEADER.finditer(text) if int(m.group(1)) > step), None)
    if cut is None:
        return
    _replace(path, text[:cut])


def _read(path: Path) -> str:
    """The file as written (newline="": a sampled carriage return stays one, not a line break)."""
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def _replace(path: Path, text: str) -> None:
    """Write `text` to a temporary file and rename it over `path`: a kill leaves the old file or the new, whole."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)
