"""One rule for what `--data` names, shared by `train` and `prepare`: documents, each in train or val.

- One plain text file without `--separator` is one text, not documents (no EOS): its first (1 - val_fraction)
  of characters train and the rest is val, cut at a safe point (`sources.safe_cut`) up to CUT_LOOKBACK
  characters before that mark. A text in memory (the built-in corpus) is cut by the same rule (`text_cut`),
  so both give the same ids.
- Anything else holds documents; each goes to val with chance val_fraction, by a hash of (seed, its number).

A tokenizer trained for these inputs learns characters from all of the text (the Tiny Shakespeare protocol:
val characters are not unknown) and words or BPE merges from the train documents only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from lmforge.data.sources import CHUNK_BYTES, Chunk, file_chunks, find_files, is_jsonl, read_chunk, safe_cut
from lmforge.errors import LmforgeError

CUT_LOOKBACK = 4096  # characters searched back from the val mark for a safe cut
DEFAULT_SEED = 1337
T = TypeVar("T")


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

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
        """The files in chunks; the one text's train part ends a chunk, and a document."""
        return file_chunks(self.files, self.text_field, self.separator, chunk_bytes,
                           self.cut() if self.one_text else None)

    def tag(self, pieces: Iterable[tuple[bool, bool, T]]) -> Iterator[tuple[str, bool, bool, T]]:
        """(has_text, ends, x) of each piece of a document, in order → (split, begins, ends, x).

        A document begins at its first piece with text, so an empty one is skipped and takes no number. The one
        text's first document (its train part) is train, the second val; otherwise the number decides (`in_val`).
        """
        number, split = 0, None
        for has_text, ends, x in pieces:
            begins = split is None and has_text
            if begins:
                val = number > 0 if self.one_text else in_val(self.seed, number, self.val_fraction)
                split, number = "val" if val else "train", number + 1
            if split is not None:
                yield split, begins, ends, x
            if ends:
                split = None

    def pieces(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[str, bool, str]]:
        """(split, begins, text) of every piece of every document, in order."""
        read = ((bool(text), ends, text) for chunk in self.chunks(chunk_bytes) for text, ends in read_chunk(chunk))
        return ((split, begins, text) for split, begins, _, text in self.tag(read))

    def texts(self, split: str | None = None) -> Iterator[str]:
        """The text of every piece (of one split, or of both), in order."""
        return (text for s, _, text in self.pieces() if text and (split is None or s == split))

    def tokenizer_texts(self, kind: str) -> Iterator[str]:
        """What a tokenizer of `kind` learns from: all text for characters, the train documents for the rest."""
        return self.texts(None if kind == "char" else "train")

    def val_documents(self) -> list[str]:
        """The text of each val document (one text's val part, when split by position)."""
        docs: list[str] = []
        for split, begins, text in self.pieces():
            if split == "val":
                if begins:
                    docs.append("")
                docs[-1] += text
        return docs

    def cut(self) -> int:
        """Where the one text file splits, as a byte offset; read from the file (to count, then near the mark)."""
        if self._cut is None:
            sizes, blank = [], True  # each chunk, and its characters
            for chunk in file_chunks(self.files):
                [(text, _)] = read_chunk(chunk)
                sizes.append((chunk, len(text)))
                blank = blank and (not text or text.isspace())
            if blank:
                raise LmforgeError(f"{self.flag} '{self.files[0]}' is empty (or only whitespace); pass {self.flag} "
                                   "with a file that holds text")
            n_chars = sum(n for _, n in sizes)
            lo, mark = cut_window(n_chars, self.val_fraction)
            window, offset, at_lo = "", 0, 0
            for chunk, n in sizes:
                if offset + n > lo and offset <= mark:
                    [(text, _)] = read_chunk(chunk)
                    if not window:
                        at_lo = chunk.end - len(text[lo - offset :].encode())  # the byte offset of character lo
                    window += text[max(lo - offset, 0) : mark + 1 - offset]
                offset += n
            cut = cut_in(window, lo, mark)
            if not 0 < cut < n_chars:
                raise LmforgeError(f"{self.flag} '{self.files[0]}' is too short to keep {self.val_fraction:g} of it "
                                   f"for val ({n_chars:,} characters); use more text or a larger val fraction")
            self._cut = at_lo + len(window[: cut - lo].encode())
        return self._cut
