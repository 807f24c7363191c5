"""Checks on the paths a user passes, each failing as one `LmforgeError`: an --out that must be a folder, and a file
that must be UTF-8 text. The commands and the library call the same two, so their messages agree."""

from __future__ import annotations

from pathlib import Path

from lmforge.errors import LmforgeError


def check_out_folder(out: str | Path | None, what: str = "a folder to write into") -> None:
    """Refuse an --out that names a file where a folder is written, before any work is done."""
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise LmforgeError(f"--out '{out}' is a file; pass --out with {what}")


def utf8_lines(path: Path, flag: str) -> list[str]:
    """The lines of the text file `flag` gave; one that is not UTF-8 is refused, naming the flag."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise LmforgeError(f"{flag} '{path}' is not UTF-8 text; save it as UTF-8") from None
