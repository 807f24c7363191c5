"""The word tokenizer: the most frequent words and punctuation marks, and an unknown token for the rest.

`PIECE` cuts text into a word or a punctuation mark, each with the one space before it if there is one, or a
single whitespace character, so joining the pieces gives the text back and decoding needs no spacing rules:

    "Hello,  world!\\n"  ->  "Hello" "," " " " world" "!" "\\n"

The vocabulary is the `vocab_size` most frequent pieces (ties broken by the piece, so training is
deterministic), then the specials. Any other piece encodes as the unknown token after its leading space, so the
spacing survives; bits per byte charges what the word lost (`unknown_bytes`, `ScoredBytes`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from itertools import repeat
from typing import Any

import numpy as np

from lmforge.errors import LmforgeError
from lmforge.tokenizers.base import SPECIAL_TEXT, Tokenizer, as_texts, check_specials, check_text

PIECE = re.compile(r" ?\w+| ?[^\w\s]|\s")
DEFAULT_SPECIALS = {"unk": SPECIAL_TEXT["unk"], "eos": SPECIAL_TEXT["eos"]}


def pieces(text: str) -> list[str]:
    """The pieces of `text`, in order; `"".join(pieces(t)) == t`."""
    return PIECE.findall(text)


class WordTokenizer(Tokenizer):
    kind = "word"
    unknown_unit = "word"

    def __init__(self, words: list[str], specials: dict[str, str] | None = None):
        self.words = list(words)
        self.special_text = check_specials(DEFAULT_SPECIALS if specials is None else specials)
        if "unk" not in self.special_text:
            raise LmforgeError("a word tokenizer needs an unknown token (special role 'unk')")
        self.stoi = {w: i for i, w in enumerate(self.words)}
        if len(self.stoi) != len(self.words):
            raise LmforgeError("a word vocabulary must list distinct pieces")
        self.specials = {role: len(self.words) + i for i, role in enumerate(self.special_text)}
        self.vocab = self.words + list(self.special_text.values())
        self.unk_id = self.specials["unk"]
        self.space_id = self.stoi.get(" ")

    @classmethod
    def train(cls, texts: str | Iterable[str], vocab_size: int = 0,
              specials: dict[str, str] | None = None) -> WordTokenizer:
        """Keep the most frequent pieces so that, with the specials, the vocabulary has `vocab_size` tokens (0: all)."""
        specials = DEFAULT_SPECIALS if specials is None else specials
        if vocab_size and vocab_size <= len(specials):
            raise LmforgeError(f"--vocab-size {vocab_size} leaves no room for words next to {len(specials)} special "
                               f"tokens; use at least {len(specials) + 1}")
        counts: Counter[str] = Counter()
        for text in as_texts(texts):
            counts.update(pieces(check_text(text)))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if vocab_size:
            ranked = ranked[: vocab_size - len(specials)]
        return cls([w for w, _ in ranked], specials)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode_array(self, text: str) -> np.ndarray:
        """Each piece looked up once, in C (`map`); only the unknown ones need more, and that is done in numpy."""
        found = pieces(text)
        ids = np.fromiter(map(self.stoi.get, found, repeat(-1)), np.int64, len(found))
        unknown = np.flatnonzero(ids < 0)
        if not len(unknown):
            return self._ids(ids)
        check_text(text)
        ids[unknown] = self.unk_id
        if self.space_id is not None:  # " word" unknown: keep the space, lose the word
            spaced = unknown[[found[i][0] == " " and len(found[i]) > 1 for i in unknown.tolist()]]
            ids = np.insert(ids, spaced, self.space_id)
        return self._ids(ids)

    def unknown_bytes(self, text: str) -> list[int]:
        """The bytes each unknown token stands for: its piece's, less the leading space kept as its own token."""
        keeps_space = self.space_id is not None
        return [len(p.encode("utf-8")) - (keeps_space and len(p) > 1 and p[0] == " ")
                for p in pieces(text) if p not in self.stoi]

    def token_bytes(self, token_id: int) -> bytes:
        return self.vocab[token_id].encode("utf-8")

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "version": 1, "specials": self.special_text, "words": self.words}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WordTokenizer:
        return cls(data["words"], data.get("specials"))
