"""The character tokenizer: one token per Unicode character seen in training.

The vocabulary is the sorted set of characters of the training text, so ids are
stable for a given text (and match the standard Tiny Shakespeare protocol: 65
characters). Special tokens, when asked for, come after the characters, so they
never move a character's id. Characters never seen in training have no id of
their own. The policy for them is `unknown`:

- "replace" (default): each becomes `fallback` (a space when the text has one,
  else its first character), so any prompt can be encoded; `unknown_count`
  says how many characters a string would lose, for warnings.
- "error": encoding raises a clear error naming the characters.
- "bytes": the vocabulary gains 256 byte tokens after the characters and an
  unseen character is spelled by its UTF-8 bytes, so `decode(encode(s)) == s`
  for every Unicode string (lone surrogates, which are not characters, are refused).

With "replace" and "error", `decode(encode(s)) == s` whenever every character of `s` was seen.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from lmforge.errors import LmforgeError
from lmforge.tokenizers.base import SPECIAL_TEXT, Tokenizer, as_texts, check_specials, check_text, id_dtype

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
        self._specials = {role: first_special + i for i, role in enumerate(self.special_text)}
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

    def encode(self, text: str) -> list[int]:
        stoi = self.stoi
        try:
            return [stoi[c] for c in text]
        except KeyError:
            pass
        check_text(text)
        if self.unknown == "error":
            unseen = sorted({c for c in text if c not in stoi})
            raise LmforgeError(
                f"{len(unseen)} character(s) not in the vocabulary: {''.join(unseen)[:20]!r}; "
                "remove them or use a tokenizer trained on text that has them"
            )
        if self.unknown == "bytes":
            ids: list[int] = []
            for c in text:
                i = stoi.get(c)
                if i is None:
                    ids.extend(self.byte_offset + b for b in c.encode("utf-8"))
                else:
                    ids.append(i)
            return ids
        fallback = stoi[self.fallback]
        return [stoi.get(c, fallback) for c in text]

    def encode_array(self, text: str) -> np.ndarray:
        """Vectorized `encode` for whole corpora: each code point looked up in a table indexed by code point."""
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        if ((points >= 0xD800) & (points <= 0xDFFF)).any():
            check_text(text)  # raises, naming the surrogate
        table = self._table()
        ids = table[np.minimum(points, len(table) - 1)]  # the last entry, -1, stands for every higher code point
        unseen = ids < 0
        if unseen.any():
            if self.unknown != "replace":
                return np.asarray(self.encode(text), dtype=id_dtype(self.vocab_size))  # raises, or spells bytes
            ids[unseen] = self.stoi[self.fallback]
        return ids.astype(id_dtype(self.vocab_size))

    def _table(self) -> np.ndarray:
        """id by code point, -1 where unseen (at most 1.1 M entries, built once)."""
        if getattr(self, "_by_point", None) is None:
            points = np.array([ord(c) for c in self.chars], dtype=np.int64)
            self._by_point = np.full(int(points.max()) + 2, -1, dtype=np.int32)
            self._by_point[points] = np.arange(len(points), dtype=np.int32)
        return self._by_point

    def unknown_count(self, text: str) -> int:
        return 0 if self.unknown == "bytes" else sum(c not in self.stoi for c in text)

    def decode(self, ids: list[int]) -> str:
        pieces = self._pieces
        if self.unknown != "bytes":
            return "".join(pieces[i] for i in ids)
        out, pending = [], bytearray()
        lo, hi = self.byte_offset, self.byte_offset + N_BYTES
        for i in ids:
            if lo <= i < hi:
                pending.append(i - lo)
                continue
            if pending:
                out.append(pending.decode("utf-8", "replace"))
                pending.clear()
            out.append(pieces[i])
        if pending:
            out.append(pending.decode("utf-8", "replace"))
        return "".join(out)

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
