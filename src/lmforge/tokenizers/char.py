"""The character tokenizer: one token per Unicode character seen in training.

The vocabulary is the sorted set of the training text's characters, so ids are stable for a given text (65
for Tiny Shakespeare, the standard protocol); special tokens come after them, so they never move a character's
id. `unknown` says what an unseen character becomes: "replace" (default) the `fallback` character (a space when
the text has one, else its first character); "error" an error naming it; "bytes" its UTF-8 bytes, as 256 byte
tokens after the characters, so that `decode(encode(s)) == s` for every string.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from lmforge.errors import LmforgeError
from lmforge.tokenizers.base import SPECIAL_TEXT, Tokenizer, as_texts, check_specials, check_text

UNKNOWN_POLICIES = ("replace", "error", "bytes")
N_BYTES = 256


class CharTokenizer(Tokenizer):
    kind = "char"

    def __init__(self, chars: list[str], unknown: str = "replace", fallback: str | None = None,
                 specials: dict[str, str] | None = None):
        if not chars:
            raise LmforgeError("a character tokenizer needs at least one character of training text")
        if unknown not in UNKNOWN_POLICIES:
            raise LmforgeError(f"unknown-character policy must be one of {UNKNOWN_POLICIES}, not '{unknown}'")
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        if len(self.stoi) != len(self.chars) or any(len(c) != 1 for c in self.chars):
            raise LmforgeError("a character vocabulary must list distinct single characters")
        check_text("".join(self.chars))
        self.unknown = unknown
        self.fallback = fallback if fallback is not None else (" " if " " in self.stoi else self.chars[0])
        if self.fallback not in self.stoi:
            raise LmforgeError(f"the fallback character {self.fallback!r} is not in the vocabulary")
        self.special_text = check_specials(specials or {})
        self.byte_offset = len(self.chars)  # first byte token, when unknown == "bytes"
        first_special = self.byte_offset + (N_BYTES if unknown == "bytes" else 0)
        self.specials = {role: first_special + i for i, role in enumerate(self.special_text)}
        self._by_point: np.ndarray | None = None
        # what each id decodes to; byte tokens decode together, in `decode`
        self._pieces = self.chars + [""] * (first_special - len(self.chars)) + list(self.special_text.values())

    @classmethod
    def train(cls, texts: str | Iterable[str], unknown: str = "replace",
              specials: dict[str, str] | None = None) -> CharTokenizer:
        chars: set[str] = set()
        for text in as_texts(texts):
            chars.update(check_text(text))
        return cls(sorted(chars), unknown=unknown, specials=specials)

    @property
    def vocab_size(self) -> int:
        return len(self._pieces)

    def encode_array(self, text: str) -> np.ndarray:
        """Each code point looked up in a table indexed by code point."""
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        if ((points >= 0xD800) & (points <= 0xDFFF)).any():
            check_text(text)  # raises, naming the surrogate
        if self._by_point is None:  # id by code point, -1 where unseen (at most 1.1 M entries, built once)
            known = np.array([ord(c) for c in self.chars], dtype=np.int64)
            self._by_point = np.full(int(known.max()) + 2, -1, dtype=np.int32)
            self._by_point[known] = np.arange(len(known), dtype=np.int32)
        ids = self._by_point[np.minimum(points, len(self._by_point) - 1)]  # the last entry, -1: every higher point
        unseen = ids < 0
        if unseen.any() and self.unknown == "error":
            chars = sorted({c for c in text if c not in self.stoi})
            raise LmforgeError(f"{len(chars)} character(s) not in the vocabulary: {''.join(chars)[:20]!r}; "
                               "remove them or use a tokenizer trained on text that has them")
        if unseen.any() and self.unknown == "bytes":
            ids = [i for c in text for i in ([self.stoi[c]] if c in self.stoi else
                                             [self.byte_offset + b for b in c.encode("utf-8")])]
        elif unseen.any():
            ids[unseen] = self.stoi[self.fallback]
        return self._ids(ids)

    def unknown_count(self, text: str) -> int:
        return 0 if self.unknown == "bytes" else sum(c not in self.stoi for c in text)

    def token_bytes(self, token_id: int) -> bytes:
        if self.unknown == "bytes" and self.byte_offset <= token_id < self.byte_offset + N_BYTES:
            return bytes([token_id - self.byte_offset])
        return self._pieces[token_id].encode("utf-8")

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "version": 1, "unknown": self.unknown, "fallback": self.fallback,
                "specials": self.special_text, "chars": self.chars}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CharTokenizer:
        return cls(data["chars"], unknown=data.get("unknown", "replace"), fallback=data.get("fallback"),
                   specials=data.get("specials"))


def default_char_specials() -> dict[str, str]:
    """An EOS for document pipelines (`prepare`); plain `lmforge train` on one text uses none."""
    return {"eos": SPECIAL_TEXT["eos"]}
