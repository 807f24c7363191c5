"""One rule for what `--data` names, shared by `train` and `prepare`: documents, each in train or val.

`--data` is a text file, a folder, a glob or JSONL (`sources.py` reads them).
Which document goes where:

- One plain text file without `--separator` is one long text, so it is split
  by position: the first (1 - val_fraction) of its characters train, the rest
  is val, cut at a safe point (`tokenizers.cuts`) within CUT_LOOKBACK characters
  before that mark, so no word or BPE piece is cut in two. It is one text, not
  documents: no EOS marks its parts. The built-in corpus and a text given in
  memory are cut by the same rule (`text_cut`), so all give the same ids.
- Anything else holds several documents; each goes to val by a hash of
  (seed, its number) with chance val_fraction, as `lmforge prepare` always did.

A tokenizer trained for these inputs learns characters from all of the text
(the Tiny Shakespeare protocol: val characters are not unknown) and words or
BPE merges from the train documents only, so val words stay unseen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lmforge.data.sources import Part, find_files, is_jsonl, iter_parts, read_blocks, text_parts
from lmforge.errors import LmforgeError
from lmforge.tokenizers.cuts import safe_cut

CUT_LOOKBACK = 4096  # characters searched back from the val mark for a safe cut
DEFAULT_SEED = 1337


def in_val(seed: int, document: int, val_fraction: float) -> bool:
    """Whether document number `document` is in val: a uniform draw from a hash of (seed, number)."""
    digest = hashlib.blake2b(f"{seed}:{document}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < val_fraction


def cut_window(n_chars: int, val_fraction: float) -> tuple[int, int]:
    """(lo, mark): the val mark of a text of `n_chars` characters, and where the search for a safe cut starts."""
    mark = int(n_chars * (1.0 - val_fraction))
    return max(mark - CUT_LOOKBACK, 0), mark


def cut_in(window: str, lo: int, mark: int) -> int:
    """The cut, given `window` = text[lo : mark + 1] (the character after the mark shows whether it is safe)."""
    return lo + safe_cut(window, 0, mark - lo)


def text_cut(text: str, val_fraction: float) -> int:
    """Where a text in memory splits: text[:cut] trains, text[cut:] is val."""
    lo, mark = cut_window(len(text), val_fraction)
    return cut_in(text[lo : mark + 1], lo, mark)


@dataclass
class Inputs:
    """The documents `spec` names, each tagged train or val by the one rule (the module docstring)."""

    spec: str | Path
    text_field: str | None = None
    separator: str | None = None
    val_fraction: float = 0.1
    seed: int = DEFAULT_SEED
    flag: str = "--data"
    files: list[Path] = field(init=False)

    def __post_init__(self) -> None:
        self.files = find_files(self.spec, self.flag)
        self._cut: int | None = None

    @property
    def one_text(self) -> bool:
        """One plain text file, not cut into documents: split by position."""
        return len(self.files) == 1 and self.separator is None and not is_jsonl(self.files[0], self.text_field)

    @property
    def documents(self) -> bool:
        """Several documents, each to end with EOS; one text has no document ends (and a char vocabulary of
        exactly its characters, no EOS)."""
        return not self.one_text

    def parts(self, chunk_chars: int = 1 << 20) -> Iterator[tuple[str, Part]]:
        """Every part of every document, in order, with its split ("train" or "val")."""
        if self.one_text:
            yield from self._split_by_position(chunk_chars)
            return
        document, split = -1, "train"
        for part in iter_parts(self.files, self.text_field, self.separator, chunk_chars):
            if part.first:
                document += 1
                split = "val" if in_val(self.seed, document, self.val_fraction) else "train"
            yield split, part

    def texts(self, split: str | None = None) -> Iterator[str]:
        """The text of every part (of one split, or of both), in order."""
        return (part.text for s, part in self.parts() if split is None or s == split)

    def tokenizer_texts(self, kind: str) -> Iterator[str]:
        """What a tokenizer of `kind` learns from: all text for characters, the train documents for the rest."""
        return self.texts(None if kind == "char" else "train")

    def val_documents(self) -> list[str]:
        """The text of each val document (one text's val part, when split by position)."""
        docs: list[str] = []
        for split, part in self.parts():
            if split == "val":
                if part.first:
                    docs.append("")
                docs[-1] += part.text
        return docs

    def cut(self) -> int:
        """Where the one text file splits, in characters; read from the file (twice: to count, then near the mark)."""
        if self._cut is None:
            path = self.files[0]
            n_chars, blank = 0, True
            for block, _ in read_blocks(path):
                n_chars += len(block)
                blank = blank and (not block or block.isspace())
            if blank:
                raise LmforgeError(f"{self.flag} '{path}' is empty (or only whitespace); pass {self.flag} with a file "
                                   "that holds text")
            lo, mark = cut_window(n_chars, self.val_fraction)
            self._cut = cut_in(_read_range(path, lo, mark + 1), lo, mark)
            if not 0 < self._cut < n_chars:
                raise LmforgeError(f"{self.flag} '{path}' is too short to keep {self.val_fraction:g} of it for val "
                                   f"({n_chars:,} characters); use more text or a larger val fraction")
        return self._cut

    def _split_by_position(self, chunk_chars: int) -> Iterator[tuple[str, Part]]:
        """The file's parts, the part holding the cut split there: a train document, then a val document."""
        cut, offset = self.cut(), 0
        for part in text_parts(self.files[0], None, chunk_chars):
            end = offset + len(part.text)
            if end <= cut:
                yield "train", Part(part.text, part.first, part.last or end == cut, part.nbytes)
            elif offset >= cut:
                yield "val", Part(part.text, part.first or offset == cut, part.last, part.nbytes)
            else:
                at = cut - offset
                yield "train", Part(part.text[:at], part.first, True, 0)
                yield "val", Part(part.text[at:], True, part.last, part.nbytes)
            offset = end


def _read_range(path: Path, start: int, stop: int) -> str:
    """Characters [start, stop) of a text file, read in blocks."""
    pieces, offset = [], 0
    for block, _ in read_blocks(path):
        lo, hi = max(start - offset, 0), min(stop - offset, len(block))
        if lo < hi:
            pieces.append(block[lo:hi])
        offset += len(block)
        if offset >= stop:
            break
    return "".join(pieces)
