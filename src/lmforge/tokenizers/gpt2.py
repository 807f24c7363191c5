"""GPT-2's vocabulary, read from its two released files, as a `bpe` tokenizer.

- `encoder.json`: each token (its bytes written with `bytes_to_unicode`) and its id, 50,257 in all;
- `vocab.bpe`: the 50,000 merges, one pair per line, highest priority first.

`gpt2_tiktoken` builds tiktoken's encoding straight from the same two files,
offline, as the reference that tests and benchmarks compare against.
"""

from __future__ import annotations

import json
from pathlib import Path

from lmforge.errors import LmforgeError
from lmforge.tokenizers.bpe import PATTERN, BpeTokenizer, byte_level, unicode_to_bytes

EOS = "<|endoftext|>"
FILES = ("encoder.json", "vocab.bpe")


def is_gpt2_folder(path: str | Path) -> bool:
    return all((Path(path) / name).is_file() for name in FILES)


def read_gpt2_files(folder: str | Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The vocabulary (token → id) and merges of a folder holding encoder.json and vocab.bpe."""
    from tokenizers import models

    folder = Path(folder)
    if not is_gpt2_folder(folder):
        raise LmforgeError(f"'{folder}' does not hold GPT-2's encoder.json and vocab.bpe; pass the folder with both files")
    try:
        return models.BPE.read_file(str(folder / "encoder.json"), str(folder / "vocab.bpe"))
    except Exception as exc:  # noqa: BLE001 - Hugging Face raises a bare Exception for a file it cannot parse
        raise LmforgeError(f"GPT-2 files in '{folder}' are corrupt ({exc}); restore them") from None


def load_gpt2(folder: str | Path) -> BpeTokenizer:
    """GPT-2's byte-level BPE: the same pipeline as a trained `bpe`, with GPT-2's vocabulary and merges."""
    from tokenizers import models

    vocab, merges = read_gpt2_files(folder)
    if EOS not in vocab:
        raise LmforgeError(f"encoder.json in '{folder}' has no {EOS} token; restore GPT-2's file")
    return BpeTokenizer(json.loads(byte_level(models.BPE(vocab, merges)).to_str()), {"eos": EOS})


def gpt2_tiktoken(folder: str | Path):
    """tiktoken's GPT-2 encoding built offline from the same two files (the reference for tests and benchmarks)."""
    import tiktoken

    vocab, _ = read_gpt2_files(folder)
    ranks = {unicode_to_bytes(token): i for token, i in vocab.items() if token != EOS}
    return tiktoken.Encoding("gpt2-local", pat_str=PATTERN.pattern, mergeable_ranks=ranks,
                             special_tokens={EOS: vocab[EOS]})
