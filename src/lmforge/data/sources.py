"""Reading a corpus as documents, streamed: a file, a folder, a glob, or JSONL.

`--data` names one file, a folder (every file under it, hidden ones skipped),
or a glob such as `'books/*.txt'`. A plain text file is one document, unless a
`separator` cuts it into several. A JSONL file (`.jsonl`/`.ndjson`, or any
file when `text_field` is given) holds one document per line, in the field
`text_field` (default "text").

Documents come out as `Part`s of at most about `chunk_chars` characters, cut
at safe points (`tokenizers.cuts`), so a 10 GB file never sits in memory and
encoding the parts gives the tokens of the whole document.
"""

from __future__ import annotations

import codecs
import glob
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lmforge.errors import LmforgeError
from lmforge.tokenizers.cuts import safe_cut

JSONL_SUFFIXES = (".jsonl", ".ndjson")
DEFAULT_TEXT_FIELD = "text"
READ_BYTES = 1 << 20


@dataclass
class Part:
    """A piece of one document, in order; `first` and `last` mark where documents begin and end."""

    text: str
    first: bool
    last: bool
    nbytes: int  # input bytes read to produce this part (for progress)


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


def iter_parts(files: list[Path], text_field: str | None = None, separator: str | None = None,
               chunk_chars: int = 1 << 20) -> Iterator[Part]:
    """Every non-empty document of `files`, in order, as parts of at most about `chunk_chars` characters."""
    if separator == "":
        raise LmforgeError("--separator must not be empty; leave it out to keep each file one document")
    for path in files:
        if is_jsonl(path, text_field):
            yield from _jsonl_parts(path, text_field or DEFAULT_TEXT_FIELD, chunk_chars)
        else:
            yield from text_parts(path, separator, chunk_chars)


def iter_texts(files: list[Path], text_field: str | None = None, separator: str | None = None) -> Iterator[str]:
    """Just the text of every part, for training a tokenizer."""
    return (part.text for part in iter_parts(files, text_field, separator))


def total_bytes(files: list[Path]) -> int:
    return sum(p.stat().st_size for p in files)


def _split_long(text: str, chunk_chars: int, nbytes: int) -> Iterator[Part]:
    """One document as parts cut at safe points."""
    start = 0
    while True:
        end = safe_cut(text, start, start + chunk_chars)
        last = end >= len(text)
        yield Part(text[start:end], start == 0, last, nbytes if last else 0)
        if last:
            return
        start = end


def _jsonl_parts(path: Path, field: str, chunk_chars: int) -> Iterator[Part]:
    skipped = 0
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                skipped += len(line)
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise LmforgeError(f"{path}:{lineno} is not valid JSON ({exc.__class__.__name__}: {exc}); "
                                   "fix the line, or drop --text-field to read the file as plain text") from None
            text = record.get(field) if isinstance(record, dict) else None
            if not isinstance(text, str):
                keys = ", ".join(list(record)[:8]) if isinstance(record, dict) else type(record).__name__
                raise LmforgeError(f"{path}:{lineno} has no text field '{field}' (it has: {keys}); "
                                   "name the field with --text-field")
            if not text:
                skipped += len(line)
                continue
            yield from _split_long(text, chunk_chars, len(line) + skipped)
            skipped = 0


def _decode_error(path: Path, offset: int, byte: int) -> LmforgeError:
    return LmforgeError(
        f"'{path}' is not UTF-8 text (byte 0x{byte:02x} at offset {offset}); convert it, e.g. "
        f"`iconv -f latin1 -t utf-8 {path} > {path.stem}.utf8{path.suffix}`, or move it out of --data"
    )


def read_blocks(path: Path) -> Iterator[tuple[str, int]]:
    """The file's text in blocks, with the bytes each block took; checked for binary content and bad UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    with open(path, "rb") as f:
        while True:
            raw = f.read(READ_BYTES)
            if offset == 0 and b"\x00" in raw[:65536]:
                raise LmforgeError(f"'{path}' looks binary (it holds NUL bytes); pass text or JSONL files only")
            held = len(decoder.getstate()[0])  # bytes of a character the previous block cut in two
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                raise _decode_error(path, offset - held + exc.start, exc.object[exc.start]) from None
            if offset == 0:
                text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the text
            offset += len(raw)
            if text or raw:
                yield text, len(raw)
            if not raw:
                return


def text_parts(path: Path, separator: str | None, chunk_chars: int) -> Iterator[Part]:
    pending, first, nbytes = "", True, 0
    keep = len(separator) - 1 if separator else 0  # a separator may straddle two blocks
    for block, size in read_blocks(path):
        pending += block
        nbytes += size
        if separator:
            *docs, pending = pending.split(separator)
            for doc in docs:
                if doc or not first:  # an empty document is skipped, the end of a started one is not
                    yield Part(doc, first, True, nbytes)
                    nbytes = 0
                first = True
        while len(pending) > chunk_chars + keep:
            cut = safe_cut(pending, 0, min(chunk_chars, len(pending) - keep))
            yield Part(pending[:cut], first, False, nbytes)
            pending, first, nbytes = pending[cut:], False, 0
    if pending or not first:
        yield Part(pending, first, True, nbytes)
