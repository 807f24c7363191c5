"""`lmforge prepare`: text in, token shards out, for corpora of any size.

    files ─► chunks: byte ranges (main) ─► read, decode, parse, encode (workers) ─► shards, in order (main)

- The workers read their chunks themselves: when the main process read, parsed and sent the text, it spent
  10-12 ms of CPU per MB against 45 for the whole job, which kept 2 cores under 1.7x one (benchmarks/RESULTS.md).
- Memory is bounded by the chunks in flight (2 per worker), never by the corpus; chunks are written in order,
  so the ids do not depend on how many workers there are.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
from tqdm import tqdm

from lmforge.data.inputs import DEFAULT_SEED, Inputs
from lmforge.data.shards import FORMAT, INDEX_FILE, SPLITS, TOKENIZER_FILE, ShardWriter, clear_partial
from lmforge.data.sources import CHUNK_BYTES, Chunk, read_chunk, total_bytes
from lmforge.errors import LmforgeError
from lmforge.paths import check_out_folder
from lmforge.tokenizers import Tokenizer
from lmforge.tokenizers.base import id_dtype, write_json_atomic

DEFAULT_SHARD_TOKENS = 100_000_000  # 200 MB of uint16 per shard


@dataclass
class PrepareOptions:
    text_field: str | None = None  # JSONL field holding the text (default "text" for .jsonl files)
    separator: str | None = None  # cut plain text files into documents here; None: one file, one document
    val_fraction: float = 0.1  # chance that a document goes to val (one text file: its last fraction)
    seed: int = DEFAULT_SEED
    workers: int = 0  # encoding processes; 0: one per core (char: 1, see `default_workers`)
    shard_tokens: int = DEFAULT_SHARD_TOKENS
    chunk_bytes: int = CHUNK_BYTES  # bytes of input a worker reads at a time
    progress: bool = True
    val_flag: str = "--val-fraction"  # how the caller spells these, for errors (train: --data.val_fraction, no seed)
    seed_flag: str | None = "--seed"

    def validate(self) -> PrepareOptions:
        if not 0.0 < self.val_fraction < 1.0:
            raise LmforgeError(f"{self.val_flag} must be between 0 and 1, not {self.val_fraction}")
        if self.workers < 0:
            raise LmforgeError(f"--workers must be 0 (one per core) or more, not {self.workers}")
        if self.shard_tokens < 1:
            raise LmforgeError(f"--shard-tokens must be at least 1, not {self.shard_tokens}")
        if self.chunk_bytes < 1:
            raise LmforgeError(f"chunk_bytes must be at least 1, not {self.chunk_bytes}")
        return self


@dataclass
class PrepareResult:
    out_dir: Path
    splits: dict[str, dict[str, Any]]
    input_bytes: int
    seconds: float
    workers: int

    @property
    def mb_per_s(self) -> float:
        return self.input_bytes / 1e6 / max(self.seconds, 1e-9)

    def summary(self) -> str:
        t, v = self.splits["train"], self.splits["val"]
        return (f"prepared {t['documents'] + v['documents']:,} documents: train {t['documents']:,} docs / "
                f"{t['tokens']:,} tokens in {len(t['shards'])} shard(s), val {v['documents']:,} docs / "
                f"{v['tokens']:,} tokens; {self.input_bytes / 1e6:,.1f} MB in {self.seconds:.1f} s "
                f"({self.mb_per_s:,.1f} MB/s, {self.workers} worker(s)) → {self.out_dir}")


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers(tokenizer: Tokenizer) -> int:
    """One per core, except for characters: a table lookup per character costs less than sending the ids back from
    another process (measured: 52 MB/s in-process against 25 MB/s with 2 workers on 2 cores)."""
    return 1 if tokenizer.kind == "char" else cores()


_TOKENIZER: Tokenizer | None = None


def _init_worker(tokenizer: Tokenizer) -> None:
    global _TOKENIZER
    _TOKENIZER = tokenizer


@dataclass
class Encoded:
    """One piece of a document, encoded; `ends`: it ends its document."""

    ids: np.ndarray
    nbytes: int
    ends: bool
    unknown: int = 0  # bytes of the text its unknown tokens stand for
    lead_unknown: int = 0  # of those, the first token's, when it is unknown (the first token of a split is not scored)


def encode_chunk(chunk: Chunk, tokenizer: Tokenizer | None = None) -> list[Encoded]:
    """Read, decode, parse and encode one chunk (in a worker, or inline with one worker)."""
    tok = tokenizer or _TOKENIZER
    unk = tok.specials.get("unk")
    out = []
    for text, ends in read_chunk(chunk):
        ids = tok.encode_array(text)
        unknown = tok.unknown_bytes(text) if unk is not None and (ids == unk).any() else []
        lead = unknown[0] if unknown and int(ids[0]) == unk else 0
        out.append(Encoded(ids, len(text.encode("utf-8")), ends, sum(unknown), lead))
    return out


def _encoded(chunks: Iterator[Chunk], tokenizer: Tokenizer, workers: int) -> Iterator[tuple[Chunk, list[Encoded]]]:
    """Each chunk and its pieces, encoded, in order, by `workers` processes fed at most 2 chunks each at a time.

    TOKENIZERS_PARALLELISM keeps Hugging Face `tokenizers` (which may have trained the tokenizer) from warning
    that the fork turned its threads off. Closing the generator stops the workers."""
    if workers == 1:
        yield from ((chunk, encode_chunk(chunk, tokenizer)) for chunk in chunks)
        return
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with mock.patch.dict(os.environ, TOKENIZERS_PARALLELISM="false"):
        pool = ctx.Pool(workers, initializer=_init_worker, initargs=(tokenizer,))
    with pool:  # leaving it terminates the workers
        pending: deque = deque()
        for chunk in chunks:
            pending.append((chunk, pool.apply_async(encode_chunk, (chunk,))))
            if len(pending) >= 2 * workers:
                yield pending[0][0], pending.popleft()[1].get()
        while pending:
            yield pending[0][0], pending.popleft()[1].get()


def prepare(data: str | Path, tokenizer: Tokenizer, out_dir: str | Path,
            options: PrepareOptions | None = None) -> PrepareResult:
    """Tokenize every document under `data` into train/val shards in `out_dir`."""
    opts = (options or PrepareOptions()).validate()
    return prepare_inputs(Inputs(data, opts.text_field, opts.separator, opts.val_fraction, opts.seed), tokenizer,
                          out_dir, opts)


def prepare_inputs(inputs: Inputs, tokenizer: Tokenizer, out_dir: str | Path, opts: PrepareOptions,
                   extra: dict[str, Any] | None = None) -> PrepareResult:
    """`prepare` of inputs already resolved (`train` resolves them once, to train a tokenizer on them first);
    `opts` gives workers, shard size and progress, `extra` more to record in index.json."""
    if tokenizer.eos_id is None and inputs.documents:
        raise LmforgeError("the tokenizer has no EOS token to end documents with; train one with "
                           "`lmforge tokenizer train` (which adds it) or pass --tokenizer char|word|bpe")
    out = Path(out_dir)
    check_out_folder(out, "a new folder for the prepared data")
    if (out / "model.safetensors").exists() or (out / "config.yaml").exists():  # its tokenizer.json would be replaced
        raise LmforgeError(f"'{out}' holds a trained run; choose a new --out for the prepared data")
    if (out / INDEX_FILE).exists():
        raise LmforgeError(f"'{out}' already holds prepared data; choose a new --out (or delete that folder)")
    out.mkdir(parents=True, exist_ok=True)
    clear_partial(out)
    dtype = id_dtype(tokenizer.vocab_size)
    writers = {s: ShardWriter(out, s, dtype, opts.shard_tokens) for s in SPLITS}
    workers = opts.workers or default_workers(tokenizer)
    eos = tokenizer.eos_id if inputs.documents else None  # one text has no document ends to mark
    start = time.perf_counter()
    n_bytes = total_bytes(inputs.files)
    bar = tqdm(total=n_bytes, unit="B", unit_scale=True, unit_divisor=1024, desc="prepare",
               disable=None if opts.progress else True,  # None: only on a terminal
               dynamic_ncols=True, leave=False)
    encoded = _encoded(inputs.chunks(opts.chunk_bytes), tokenizer, workers)

    def pieces() -> Iterator[tuple[bool, bool, Encoded]]:
        for chunk, results in encoded:
            bar.update(chunk.end - chunk.start)
            yield from ((enc.nbytes > 0, enc.ends, enc) for enc in results)

    try:
        for split, begins, ends, enc in inputs.tag(pieces()):
            if begins:
                writers[split].begin_document()
            writers[split].write(enc.ids, enc.nbytes, enc.unknown, enc.lead_unknown)
            if ends:
                writers[split].end_document(eos)
        splits = {s: w.close() for s, w in writers.items()}
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    finally:
        encoded.close()
        bar.close()
    try:
        _check_splits(splits, sum(s["documents"] for s in splits.values()), inputs, opts)
    except LmforgeError:
        clear_partial(out)  # shards without an index would make the folder look like binary text to `train --data`
        raise
    seconds = time.perf_counter() - start
    tokenizer.save(out / TOKENIZER_FILE)
    from lmforge import __version__

    write_json_atomic(out / INDEX_FILE, {
        "format": FORMAT, "version": 1, "lmforge_version": __version__,
        "dtype": np.dtype(dtype).name, "vocab_size": tokenizer.vocab_size, "eos_id": tokenizer.eos_id,
        "tokenizer": TOKENIZER_FILE, "tokenizer_kind": tokenizer.kind,
        "source": str(inputs.spec), "files": len(inputs.files), "text_field": inputs.text_field,
        "separator": inputs.separator, "split": "hash" if inputs.documents else "position",
        "seed": inputs.seed, "val_fraction": inputs.val_fraction, "input_bytes": n_bytes, "seconds": round(seconds, 3),
        "splits": splits, **(extra or {}),
    })  # last: only now is the directory complete
    return PrepareResult(out, splits, n_bytes, seconds, workers)


def _check_splits(splits: dict[str, dict[str, Any]], documents: int, inputs: Inputs, opts: PrepareOptions) -> None:
    if documents <= 0:
        raise LmforgeError("--data holds no text (every document is empty); pass files with text in them")
    if documents == 1:
        how = ("choose a --separator that occurs in the text, or leave it out to keep the last part of the file for val"
               if inputs.separator else "pass a folder, a glob or JSONL with several documents")
        raise LmforgeError(f"--data is a single document, so train and val cannot be split by document; {how}")
    for name in SPLITS:
        if splits[name]["documents"] == 0:
            seed = f", {opts.seed_flag} {inputs.seed}" if opts.seed_flag else ""
            change = f"{opts.val_flag} or {opts.seed_flag}" if opts.seed_flag else opts.val_flag
            raise LmforgeError(f"none of the {documents} documents fell in the {name} split ({opts.val_flag} "
                               f"{inputs.val_fraction}{seed}); change {change}, or add documents")
