"""The character tokenizer: one token per Unicode character seen in training.

The vocabulary is the sorted set of characters of the training text, so ids are
stable for a given text (and match the standard Tiny Shakespeare protocol: 65
characters). Characters never seen in training have no id. The policy for them
is `unknown`:

- "replace" (default): each becomes `fallback` (a space when the text has one,
  else its first character), so any prompt can be encoded; `unknown_count`
  says how many characters a string would lose, for warnings.
- "error": encoding raises a clear error naming the characters.

Decoding is exact: `decode(encode(s)) == s` whenever every character of `s` was seen.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmforge.errors import LmforgeError
from lmforge.tokenizers.base import Tokenizer, id_dtype

UNKNOWN_POLICIES = ("replace", "error")


class CharTokenizer(Tokenizer):
    kind = "char"

    def __init__(self, chars: list[str], unknown: str = "replace", fallback: str | None = None):
        if not chars:
            raise LmforgeError("a character tokenizer needs at least one character of training text")
        if unknown not in UNKNOWN_POLICIES:
            raise LmforgeError(f"unknown-character policy must be one of {UNKNOWN_POLICIES}, not '{unknown}'")
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        if len(self.stoi) != len(self.chars) or any(len(c) != 1 for c in self.chars):
            raise LmforgeError("a character vocabulary must list distinct single characters")
        self.unknown = unknown
        self.fallback = fallback if fallback is not None else (" " if " " in self.stoi else self.chars[0])
        if self.fallback not in self.stoi:
            raise LmforgeError(f"the fallback character {self.fallback!r} is not in the vocabulary")

    @classmethod
    def train(cls, text: str, unknown: str = "replace") -> CharTokenizer:
        return cls(sorted(set(text)), unknown=unknown)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        stoi = self.stoi
        try:
            return [stoi[c] for c in text]
        except KeyError:
            pass
        if self.unknown == "error":
            unseen = sorted({c for c in text if c not in stoi})
            raise LmforgeError(
                f"{len(unseen)} character(s) not in the vocabulary: {''.join(unseen)[:20]!r}; "
                "remove them or use a tokenizer trained on text that has them"
            )
        fallback = stoi[self.fallback]
        return [stoi.get(c, fallback) for c in text]

    def encode_array(self, text: str) -> np.ndarray:
        """Vectorized `encode` for whole corpora: code points looked up with one searchsorted."""
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        table = np.array([ord(c) for c in self.chars], dtype=np.uint32)  # sorted when trained
        order = np.argsort(table, kind="stable")
        pos = np.searchsorted(table[order], points).clip(max=len(table) - 1)
        ids = order[pos]
        seen = table[ids] == points
        if not seen.all():
            if self.unknown == "error":
                self.encode(text)  # raises with the unseen characters named
            ids = np.where(seen, ids, self.stoi[self.fallback])
        return ids.astype(id_dtype(self.vocab_size))

    def unknown_count(self, text: str) -> int:
        return sum(c not in self.stoi for c in text)

    def decode(self, ids: list[int]) -> str:
        chars = self.chars
        return "".join(chars[i] for i in ids)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "version": 1, "unknown": self.unknown, "fallback": self.fallback, "chars": self.chars}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CharTokenizer:
        return cls(data["chars"], unknown=data.get("unknown", "replace"), fallback=data.get("fallback"))
