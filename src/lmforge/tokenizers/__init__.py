"""Tokenizers behind one interface: `char`, `word` (with an unknown token) and `bpe` (byte-level; GPT-2's loads
as one), and `tokenizer_from_spec`, for what a user types after `--tokenizer`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from lmforge.errors import LmforgeError, did_you_mean
from lmforge.tokenizers.base import Tokenizer, check_text, load_tokenizer
from lmforge.tokenizers.char import CharTokenizer, default_char_specials
from lmforge.tokenizers.bpe import BpeTokenizer, is_gpt2_folder, load_gpt2
from lmforge.tokenizers.word import WordTokenizer

KINDS = ("char", "word", "bpe")
DEFAULT_VOCAB_SIZE = 8192  # word and bpe, when --vocab-size is 0


def train_tokenizer(kind: str, texts: str | Iterable[str], vocab_size: int = 0, documents: bool = False,
                    unknown: str = "replace") -> Tokenizer:
    """Build a tokenizer of `kind` from training text (one string, or an iterable of documents or parts of them).

    `documents`: give `char` an EOS to separate them (word and bpe always have one); without it, as for one
    text, a character vocabulary is exactly the text's characters. `unknown`: char's policy for unseen characters."""
    if kind == "char":
        if vocab_size:
            raise LmforgeError("--vocab-size does not apply to the char tokenizer: its vocabulary is every character "
                               "of the text; leave --vocab-size out")
        return CharTokenizer.train(texts, unknown=unknown, specials=default_char_specials() if documents else None)
    if kind == "word":
        return WordTokenizer.train(texts, vocab_size or DEFAULT_VOCAB_SIZE)
    if kind == "bpe":
        return BpeTokenizer.train(texts, vocab_size or DEFAULT_VOCAB_SIZE)
    raise LmforgeError(f"unknown tokenizer kind '{kind}'{did_you_mean(kind, KINDS)}; kinds are {', '.join(KINDS)}")


def tokenizer_from_spec(spec: str, texts: Callable[[], Iterable[str]] | None = None, vocab_size: int = 0,
                        flag: str = "--tokenizer", documents: bool = True) -> Tokenizer:
    """A tokenizer from a kind (trained on `texts()`, as `train_tokenizer` with `documents`), a JSON file, a folder
    holding tokenizer.json, or GPT-2's files."""
    if spec in KINDS:
        if texts is None:
            raise LmforgeError(f"{flag} {spec} needs text to train on; pass a trained tokenizer file instead")
        return train_tokenizer(spec, texts(), vocab_size, documents=documents)
    path = Path(spec)
    if path.is_dir() and is_gpt2_folder(path):
        return load_gpt2(path)
    if path.is_dir() and (path / "tokenizer.json").is_file():
        return load_tokenizer(path / "tokenizer.json")
    if path.is_file():
        return load_tokenizer(path)
    raise LmforgeError(
        f"{flag} '{spec}' is not a kind ({', '.join(KINDS)}){did_you_mean(spec, KINDS)}, a tokenizer JSON file, a "
        "run or prepared directory, or a folder with GPT-2's encoder.json and vocab.bpe"
    )


__all__ = ["KINDS", "BpeTokenizer", "CharTokenizer", "Tokenizer", "WordTokenizer", "check_text", "load_gpt2",
           "load_tokenizer", "tokenizer_from_spec", "train_tokenizer"]
