"""Reading a corpus in chunks: a file, a folder (hidden files skipped), a glob, or JSONL.

A plain text file is one document unless a `separator` cuts it; a JSONL file (`.jsonl`/`.ndjson`, or any file
when `text_field` is given) holds one document per line, in `text_field` (default "text"). Files are cut into
`Chunk`s of about `chunk_bytes`, so a 10 GB file never sits in memory and `prepare`'s workers each read their
own; a JSONL chunk ends after a line, a text chunk at a safe point that no separator straddles.

A safe point: every tokenizer first cuts text into pieces with a regular expression, and none (GPT-2's BPE
pattern, the word pattern, single characters) lets a piece span, or look past, the point between a non-space
character and a space or newline after it. So encoding the parts cut there gives exactly the ids of encoding the whole.
"""

from __future__ import annotations

import glob
import json
import mmap
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lmforge.errors import LmforgeError

JSONL_SUFFIXES = (".jsonl", ".ndjson")
DEFAULT_TEXT_FIELD = "text"
CHUNK_BYTES = 1 << 20
_SAFE = re.compile(r"\S(?=[ \n])")
SEARCH_WINDOW = 1 << 16  # characters searched back from the limit; a text with no safe point there is cut anyway


def safe_cut(text: str, start: int, limit: int) -> int:
    """The largest safe cut point in (start, limit], or `limit` when the last SEARCH_WINDOW characters hold none."""
    if limit >= len(text):
        return len(text)
    for window in (256, SEARCH_WINDOW):  # ordinary text has a safe point every few characters
        last = None
        # endpos limit + 1: the lookahead must see text[limit] to know that a cut at the limit itself is safe
        for last in _SAFE.finditer(text, max(start, limit - window), limit + 1):
            pass
        if last is not None:
            return last.end()
    return limit


def split_text(text: str, size: int) -> list[str]:
    """`text` in consecutive parts of about `size` characters, each cut at a safe point."""
    parts, start = [], 0
    while start < len(text):
        end = safe_cut(text, start, start + max(1, size))
        parts.append(text[start:end])
        start = end
    return parts


@dataclass(frozen=True)
class Chunk:
    """Bytes [start, end) of one file. Its last piece ends a document when `ends` (the file's end, or one text's
    train/val cut); `field`: the JSONL field holding the text, None for plain text."""

    path: Path
    start: int
    end: int
    ends: bool
    field: str | None = None
    separator: str | None = None


def find_files(spec: str | Path, flag: str = "--data") -> list[Path]:
    """The files `spec` names, sorted so every run reads them in the same order."""
    spec = str(spec)
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise LmforgeError(f"{flag} folder '{spec}' holds no files; put text or JSONL files in it")
        return files
    if glob.has_magic(spec):
        files = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not files:
            raise LmforgeError(f"{flag} pattern '{spec}' matches no files; check the pattern (quote it in the shell)")
        return files
    raise LmforgeError(f"{flag} '{spec}' does not exist; pass a text file, a folder, a glob like 'data/*.txt', or a JSONL file")


def is_jsonl(path: Path, text_field: str | None) -> bool:
    return text_field is not None or path.suffix.lower() in JSONL_SUFFIXES


def total_bytes(files: list[Path]) -> int:
    return sum(p.stat().st_size for p in files)


# ---------------------------------------------------------------------- cutting files into chunks (main process)


def file_chunks(files: list[Path], text_field: str | None = None, separator: str | None = None,
           chunk_bytes: int = CHUNK_BYTES, cut: int | None = None) -> Iterator[Chunk]:
    """The chunks of `files`, in order; `cut`: a byte offset of the (one) file where a document must end."""
    if separator == "":
        raise LmforgeError("--separator must not be empty; leave it out to keep each file one document")
    for path in files:
        size = path.stat().st_size
        field = (text_field or DEFAULT_TEXT_FIELD) if is_jsonl(path, text_field) else None
        if size == 0:
            continue
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            start = 0
            while start < size:
                end = start + chunk_bytes
                if end >= size:
                    end = size
                elif field:
                    end = mm.find(b"\n", end) + 1 or size  # just past the line, or the file's end
                else:
                    end = _text_cut(mm, start, end, separator)
                if cut is not None and start < cut < end:
                    end = cut
                yield Chunk(path, start, end, end in (size, cut), field, separator)
                start = end


def _text_cut(mm: mmap.mmap, start: int, limit: int, separator: str | None) -> int:
    """A cut in (start, limit] as a byte offset: the last safe one that no separator straddles, else the limit (or
    just past the separators that straddle it)."""
    lo = max(start, limit - SEARCH_WINDOW)
    raw = mm[lo : limit + SEARCH_WINDOW]  # past the limit too: is the cut safe, does a separator run on
    skip = 0
    while lo + skip > start and skip < 3 and 0x80 <= raw[skip] < 0xC0:  # begin at a character
        skip += 1
    end = limit - lo
    while end < len(raw) and 0x80 <= raw[end] < 0xC0:  # the limit too
        end += 1
    # surrogateescape: a bad byte becomes one stand-in character, so offsets stay exact (the worker reports it)
    text = raw[skip:].decode("utf-8", "surrogateescape")
    at = cut = len(raw[skip:end].decode("utf-8", "surrogateescape"))
    n = len(separator or "")

    def straddling(i: int) -> int:
        """Where a separator that straddles `i` begins, or -1."""
        return text.find(separator, max(i - n + 1, 0), i + n - 1) if separator else -1

    while cut > 0:
        cut = safe_cut(text, 0, cut)
        if (s := straddling(cut)) < 0:
            break
        cut = s
    if cut == 0:
        cut = at
        while (s := straddling(cut)) >= 0:
            cut = s + n
    return lo + skip + len(text[:cut].encode("utf-8", "surrogateescape"))


# ---------------------------------------------------------------------- reading one chunk (worker processes)


def decode(raw: bytes, path: Path, offset: int = 0, flag: str = "--data") -> str:
    """The text of `raw`, bytes of `path` from `offset` (a byte-order mark at 0 dropped); binary or bad UTF-8 is
    refused in one line."""
    if offset == 0 and b"\x00" in raw[:65536]:
        raise LmforgeError(f"{flag} '{path}' looks binary (it holds NUL bytes); pass text or JSONL files only")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LmforgeError(
            f"{flag} '{path}' is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {offset + exc.start}); convert "
            f"it, e.g. `iconv -f latin1 -t utf-8 {path} > {path.stem}.utf8{path.suffix}`, or leave it out of {flag}"
        ) from None
    return text.removeprefix("\ufeff") if offset == 0 else text  # a byte-order mark is not part of the text


def read_chunk(chunk: Chunk) -> list[tuple[str, bool]]:
    """The chunk's pieces of documents, in order: (text, whether it ends its document). Empty ones are kept, so the
    caller sees every document end; a document begins at its first piece with text."""
    with open(chunk.path, "rb") as f:
        f.seek(chunk.start)
        raw = f.read(chunk.end - chunk.start)
    if chunk.field:
        return _records(chunk, raw)
    text = decode(raw, chunk.path, chunk.start)
    if not chunk.separator:
        return [(text, chunk.ends)]
    *docs, last = text.split(chunk.separator)
    return [(doc, True) for doc in docs] + [(last, chunk.ends)]


def _records(chunk: Chunk, raw: bytes) -> list[tuple[str, bool]]:
    """One piece per JSONL line, the text of its field; a bad line is named by its number in the file."""
    out = []
    for i, line in enumerate(raw.split(b"\n")):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise LmforgeError(f"{chunk.path}:{_line_number(chunk, i)} is not valid JSON ({exc.__class__.__name__}: "
                               f"{exc}); fix the line, or drop --text-field to read the file as plain text") from None
        text = record.get(chunk.field) if isinstance(record, dict) else None
        if text is not None and not isinstance(text, str):
            raise LmforgeError(f"{chunk.path}:{_line_number(chunk, i)}: text field '{chunk.field}' is not a string "
                               f"({json.dumps(text)[:40]}); write the text as a JSON string")
        if not isinstance(text, str):
            keys = ", ".join(list(record)[:8]) if isinstance(record, dict) else type(record).__name__
            raise LmforgeError(f"{chunk.path}:{_line_number(chunk, i)} has no text field '{chunk.field}' (it has: "
                               f"{keys}); name the field with --text-field")
        out.append((text, True))
    return out


def _line_number(chunk: Chunk, line: int) -> int:
    with open(chunk.path, "rb") as f:
        return f.read(chunk.start).count(b"\n") + line + 1


def iter_texts(files: list[Path], text_field: str | None = None, separator: str | None = None) -> Iterator[str]:
    """The text of every piece of every document, in order (for training and inspecting tokenizers)."""
    return (text for chunk in file_chunks(files, text_field, separator) for text, _ in read_chunk(chunk) if text)
