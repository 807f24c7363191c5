"""Token shards on disk: flat arrays of ids, one file per shard, and a JSON index.

    DIR/
      index.json          what is where: splits, shards, token and document counts, dtype
      tokenizer.json      the tokenizer that made the ids
      train-00000.bin     raw little-endian uint16 (or uint32) ids, np.memmap-able, no header
      val-00000.bin

Every document ends with EOS and a shard holds whole documents (one text split by position has no EOS:
"split": "position"). Shards are renamed from `.tmp` when complete and the index is written last, so an
interrupted run leaves no half shard that looks whole and no index that points at one.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.errors import LmforgeError
from lmforge.tokenizers import Tokenizer, load_tokenizer
from lmforge.tokenizers.base import ScoredBytes

INDEX_FILE = "index.json"
TOKENIZER_FILE = "tokenizer.json"
FORMAT = "lmforge-prepared"
SPLITS = ("train", "val")
SHARD_NAME = re.compile(r"^(train|val)-\d{5}\.bin(\.tmp)?$")


def is_prepared_dir(path: str | Path | None) -> bool:
    return path is not None and (Path(path) / INDEX_FILE).is_file()


def clear_partial(out_dir: Path) -> None:
    """Remove shards of an earlier interrupted run (there is no index, so nothing points at them)."""
    for p in out_dir.iterdir():
        if is_partial(p.name):
            p.unlink()


def is_partial(name: str) -> bool:
    """A file that an interrupted `prepare` may leave behind."""
    return bool(SHARD_NAME.match(name)) or name in (INDEX_FILE + ".tmp", TOKENIZER_FILE + ".tmp")


class ShardWriter:
    """Appends documents of one split to shards of about `shard_tokens` ids (Python's file buffer batches the writes)."""

    def __init__(self, out_dir: Path, split: str, dtype: type[np.unsignedinteger], shard_tokens: int):
        self.out_dir, self.split, self.shard_tokens = out_dir, split, shard_tokens
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.shards: list[dict[str, Any]] = []
        self.documents = self.tokens = self.bytes = 0
        self.unknown_bytes = self.lead_unknown_bytes = 0  # for bits per byte: see `PreparedData.scored_bytes`
        self._file = None
        self._shard_tokens = self._shard_docs = 0

    def _path(self, tmp: bool) -> Path:
        return self.out_dir / f"{self.split}-{len(self.shards):05d}.bin{'.tmp' if tmp else ''}"

    def begin_document(self) -> None:
        if self._file is not None and self._shard_tokens >= self.shard_tokens:
            self._close_shard()

    def write(self, ids: np.ndarray, nbytes: int = 0, unknown: int = 0, lead_unknown: int = 0) -> None:
        """Append ids that spell `nbytes` bytes, `unknown` of them by unknown tokens (`lead_unknown`: by the first)."""
        if self._file is None:
            self._file = open(self._path(tmp=True), "wb")
        if self.tokens == 0 and len(ids):
            self.lead_unknown_bytes = lead_unknown
        self.unknown_bytes += unknown
        self._file.write(np.asarray(ids, dtype=self.dtype).tobytes())
        self._shard_tokens += len(ids)
        self.tokens += len(ids)
        self.bytes += nbytes

    def end_document(self, eos_id: int | None) -> None:
        """End a document with EOS (None: one text split by position, which has no document ends to mark)."""
        if eos_id is not None:
            self.write(np.array([eos_id]))
        self.documents += 1
        self._shard_docs += 1

    def _close_shard(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        os.replace(self._path(tmp=True), self._path(tmp=False))  # only now does the shard have its real name
        self.shards.append({"file": self._path(tmp=False).name, "tokens": self._shard_tokens,
                            "documents": self._shard_docs})
        self._shard_tokens = self._shard_docs = 0

    def close(self) -> dict[str, Any]:
        if self._file is not None:
            self._close_shard()
        return {"documents": self.documents, "tokens": self.tokens, "bytes": self.bytes,
                "unknown_bytes": self.unknown_bytes, "lead_unknown_bytes": self.lead_unknown_bytes, "shards": self.shards}

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._path(tmp=True).unlink(missing_ok=True)


class ShardedTokens:
    """Several memmapped shards read as one flat, read-only array of ids: `len`, slices, and integer-array
    indexing of any shape (random windows may straddle two shards)."""

    def __init__(self, shards: list[np.ndarray]):
        self.shards = [s for s in shards if len(s)]
        self.starts = np.cumsum([0] + [len(s) for s in self.shards])  # (n_shards + 1,)
        self.dtype = self.shards[0].dtype if self.shards else np.dtype(np.uint16)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return self[np.arange(start, stop, step)]
            pieces = [shard[max(start - at, 0) : max(stop - at, 0)] for shard, at in zip(self.shards, self.starts)]
            return np.concatenate(pieces) if pieces else np.empty(0, dtype=self.dtype)
        index = np.asarray(index)
        if index.dtype.kind not in "iu":
            raise TypeError(f"ShardedTokens takes slices and integer arrays, not {index.dtype}")
        index = np.where(index < 0, index + len(self), index)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"token index out of range for {len(self)} tokens")
        which = np.searchsorted(self.starts, index, side="right") - 1  # the shard of each index
        out = np.empty(index.shape, dtype=self.dtype)
        for k in np.unique(which):
            mask = which == k
            out[mask] = self.shards[k][index[mask] - self.starts[k]]
        return out


class PreparedData:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        index_path = self.path / INDEX_FILE
        if not index_path.is_file():
            raise LmforgeError(f"'{self.path}' has no {INDEX_FILE}: it is not a prepared directory, or `lmforge prepare` "
                               "was interrupted there; run `lmforge prepare --data ... --out` again")
        try:
            self.index = json.loads(index_path.read_text(encoding="utf-8"))
            ok = self.index.get("format") == FORMAT and all(s in self.index["splits"] for s in SPLITS)
        except (ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise LmforgeError(f"'{index_path}' is corrupt or not lmforge's; run `lmforge prepare` again")
        self.dtype = np.dtype(self.index["dtype"]).newbyteorder("<")
        self.tokenizer: Tokenizer = load_tokenizer(self.path / self.index.get("tokenizer", TOKENIZER_FILE))

    def split(self, name: str) -> np.ndarray | ShardedTokens:
        """The ids of a split: the shard itself (a memmap) when there is one, else all shards as one array."""
        arrays = []
        for shard in self.index["splits"][name]["shards"]:
            path = self.path / shard["file"]
            expected = shard["tokens"] * self.dtype.itemsize
            if not path.is_file() or path.stat().st_size != expected:
                raise LmforgeError(f"shard '{path}' is missing or has the wrong size (expected {expected:,} bytes); "
                                   "run `lmforge prepare` again")
            arrays.append(np.memmap(path, dtype=self.dtype, mode="r", shape=(shard["tokens"],)))
        return arrays[0] if len(arrays) == 1 else ShardedTokens(arrays)

    def scored_bytes(self, name: str) -> ScoredBytes:
        """What bits per byte of a split divides by and charges, counted as `Tokenizer.count_scored_bytes` counts a
        text: the UTF-8 bytes spelled by all tokens but the first, and of those the bytes of unknown words.

        The EOS ending each document stands for no byte; bits per byte leaves its loss out (evaluate_ids)."""
        split, ids = self.index["splits"][name], self.split(name)
        lead = split.get("lead_unknown_bytes", 0)  # older directories did not count unknown words
        first = lead or (len(self.tokenizer.token_bytes(int(ids[0]))) if len(ids) else 0)
        return ScoredBytes(max(split["bytes"] - first, 0), split.get("unknown_bytes", 0) - lead)
