"""The interface every tokenizer keeps, and loading one from its JSON file (whose `"type"` names its class).

Special tokens (BOS, EOS, PAD, UNK) are named by role. They have ids and a text form for display, but
`encode` never produces them from text: "<|endoftext|>" inside a document is ordinary text, so
`decode(encode(s)) == s` holds for it too. Code that needs a separator adds the id itself (`prepare`
ends every document with EOS).
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lmforge.errors import LmforgeError

SPECIAL_ROLES = ("bos", "eos", "pad", "unk")
SPECIAL_TEXT = {"bos": "<|startoftext|>", "eos": "<|endoftext|>", "pad": "<|pad|>", "unk": "<|unk|>"}
_SURROGATE = re.compile("[\ud800-\udfff]")


def id_dtype(vocab_size: int) -> type[np.unsignedinteger]:
    """uint16 when every id fits (half the memory and disk), else uint32."""
    return np.uint16 if vocab_size <= 2**16 else np.uint32


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """A reader never sees half a file: write beside it, then rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def check_text(text: str) -> str:
    """Refuse lone surrogates: they are not characters, have no UTF-8 bytes, and cannot round-trip."""
    bad = _SURROGATE.search(text)
    if bad:
        raise LmforgeError(
            f"the text holds an invalid lone surrogate U+{ord(bad.group()):04X} at character {bad.start():,}; "
            "pass valid Unicode (decode files as UTF-8 with errors='strict', or remove the surrogate)"
        )
    return text


def check_specials(specials: dict[str, str]) -> dict[str, str]:
    """Special tokens by role; roles are bos, eos, pad, unk and texts must be distinct."""
    for role, text in specials.items():
        if role not in SPECIAL_ROLES:
            raise LmforgeError(f"unknown special-token role '{role}'; roles are {', '.join(SPECIAL_ROLES)}")
        if not isinstance(text, str) or not text:
            raise LmforgeError(f"special token '{role}' needs a non-empty text, e.g. {SPECIAL_TEXT[role]!r}")
    if len(set(specials.values())) != len(specials):
        raise LmforgeError("two special tokens share one text; give each role its own")
    return dict(specials)


def as_texts(texts: str | Iterable[str]) -> Iterable[str]:
    """Training accepts one string or an iterable of strings (documents, or pieces of them)."""
    return [texts] if isinstance(texts, str) else texts


@dataclass(frozen=True)
class ScoredBytes:
    """What bits per byte divides by: the UTF-8 bytes spelled by the scored tokens (all but the first); and
    `unknown`, those of them that unknown tokens stand for. An unknown token predicts that some word comes, not
    which, so bits per byte adds `UNKNOWN_BITS_PER_BYTE` for each: else those bytes would count for free."""

    bytes: int
    unknown: int = 0


UNKNOWN_BITS_PER_BYTE = 8.0  # a byte spelled under the uniform distribution over 256 values


class Tokenizer(ABC):
    kind: ClassVar[str]
    unknown_unit: ClassVar[str] = "character"  # what `unknown_count` counts, for warnings
    registry: ClassVar[dict[str, type[Tokenizer]]] = {}
    specials: dict[str, int]  # special-token ids by role ("eos", "pad", ...); each kind sets them, maybe none

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind in Tokenizer.registry:
            raise TypeError(f"two tokenizers claim the kind '{cls.kind}'")
        Tokenizer.registry[cls.kind] = cls

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    @abstractmethod
    def encode_array(self, text: str) -> np.ndarray:
        """The ids of `text`, as the smallest unsigned integer array that holds any id (whole corpora at C speed)."""

    @abstractmethod
    def token_bytes(self, token_id: int) -> bytes:
        """The UTF-8 bytes one token stands for (for BPE, or a char byte token, possibly part of a character)."""

    def decode(self, ids: list[int]) -> str:
        """Join the tokens' bytes, then read them as UTF-8; a character cut in two shows as U+FFFD."""
        return b"".join(map(self.token_bytes, ids)).decode("utf-8", "replace")

    @property
    def eos_id(self) -> int | None:
        return self.specials.get("eos")

    def _ids(self, ids: Any) -> np.ndarray:
        return np.asarray(ids).astype(id_dtype(self.vocab_size), copy=False)

    def count_scored_bytes(self, text: str, ids: np.ndarray) -> ScoredBytes:
        """The bytes of `text` (encoded as `ids`) that bits per byte scores, and those its unknown tokens stand for.

        Counted from the text itself: a word tokenizer decodes an unknown word as its unknown token, whose
        7 bytes are not the word's. `eval` and `compare` both count this way, so they agree.
        """
        unknown = self.unknown_bytes(text)  # one entry per unknown token, in order
        unk_id = self.specials.get("unk")
        first_unknown = bool(len(ids)) and bool(unknown) and int(ids[0]) == unk_id
        first = unknown[0] if first_unknown else (len(self.token_bytes(int(ids[0]))) if len(ids) else 0)
        charged = sum(unknown) - (first if first_unknown else 0)  # the first token is not scored
        return ScoredBytes(max(len(text.encode("utf-8")) - first, 0), charged)

    def unknown_bytes(self, text: str) -> list[int]:
        """For each unknown token of `encode(text)`, in order, the UTF-8 bytes of `text` it stands for (none here)."""
        return []

    def unknown_count(self, text: str) -> int:
        """How many characters or words of `text` encoding would lose (replace by a fallback or unknown token)."""
        return len(self.unknown_bytes(text))

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild this tokenizer, with `"type"` set to its kind."""

    @classmethod
    @abstractmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokenizer: ...

    def save(self, path: str | Path) -> None:
        write_json_atomic(Path(path), self.to_dict())


def load_tokenizer(path: str | Path) -> Tokenizer:
    path = Path(path)
    if not path.is_file():
        raise LmforgeError(f"tokenizer file '{path}' does not exist; train one with `lmforge train` or "
                           "`lmforge tokenizer train`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        kind = data["type"]
        if kind not in Tokenizer.registry:
            raise LmforgeError(f"tokenizer file '{path}' has unknown type '{kind}'; known: "
                               f"{', '.join(Tokenizer.registry)}")
        return Tokenizer.registry[kind].from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise LmforgeError(f"tokenizer file '{path}' is corrupt ({type(exc).__name__}: {exc}); retrain or restore "
                           "it") from None
