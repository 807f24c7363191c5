"""GPT-2's vocabulary, read from its two released files, as a `bpe` tokenizer.

- `encoder.json`: each token (its bytes written with `bytes_to_unicode`) and its id, 50,257 in all;
- `vocab.bpe`: the 50,000 merges, one pair per line, highest priority first.

`gpt2_tiktoken` builds tiktoken's encoding straight from the same two files,
offline, as the reference that tests and benchmarks compare against.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.tokenizers.bpe import PATTERN, BpeTokenizer, unicode_to_bytes

EOS = "<|endoftext|>"
FILES = ("encoder.json", "vocab.bpe")


def is_gpt2_folder(path: str | Path) -> bool:
    return all((Path(path) / name).is_file() for name in FILES)


def read_gpt2_files(folder: str | Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The vocabulary (token → id) and merges of a folder holding encoder.json and vocab.bpe."""
    folder = Path(folder)
    if not is_gpt2_folder(folder):
        raise LmforgeError(f"'{folder}' does not hold GPT-2's encoder.json and vocab.bpe; pass the folder with both files")
    try:
        vocab = json.loads((folder / "encoder.json").read_text(encoding="utf-8"))
        lines = (folder / "vocab.bpe").read_text(encoding="utf-8").splitlines()
        merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]
    except (ValueError, UnicodeDecodeError) as exc:
        raise LmforgeError(f"GPT-2 files in '{folder}' are corrupt ({exc}); restore them") from None
    if not isinstance(vocab, dict) or any(len(m) != 2 for m in merges):
        raise LmforgeError(f"GPT-2 files in '{folder}' are corrupt (unexpected layout); restore them")
    return vocab, merges  # type: ignore[return-value]


def load_gpt2(folder: str | Path) -> BpeTokenizer:
    """GPT-2's byte-level BPE: the same pipeline as a trained `bpe`, with GPT-2's vocabulary and merges."""
    vocab, merges = read_gpt2_files(folder)
    if EOS not in vocab:
        raise LmforgeError(f"encoder.json in '{folder}' has no {EOS} token; restore GPT-2's file")
    pipeline: dict[str, Any] = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [list(m) for m in merges]},
    }
    return BpeTokenizer(pipeline, {"eos": EOS})


def gpt2_tiktoken(folder: str | Path):
    """tiktoken's GPT-2 encoding built offline from the same two files (the reference for tests and benchmarks)."""
    import tiktoken

    vocab, _ = read_gpt2_files(folder)
    ranks = {unicode_to_bytes(token): i for token, i in vocab.items() if token != EOS}
    return tiktoken.Encoding("gpt2-local", pat_str=PATTERN.pattern, mergeable_ranks=ranks,
                             special_tokens={EOS: vocab[EOS]})
