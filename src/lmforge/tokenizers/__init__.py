"""Tokenizers: text to token ids and back, behind one interface."""

from lmforge.errors import LmforgeError
from lmforge.tokenizers.base import Tokenizer, load_tokenizer
from lmforge.tokenizers.char import CharTokenizer


def train_tokenizer(kind: str, text: str) -> Tokenizer:
    """Build a tokenizer of `kind` from training text."""
    if kind == "char":
        return CharTokenizer.train(text)
    raise LmforgeError(f"unknown tokenizer kind '{kind}'; known: {', '.join(Tokenizer.registry)}")


__all__ = ["CharTokenizer", "Tokenizer", "load_tokenizer", "train_tokenizer"]
