"""The interface every tokenizer keeps, and loading one from its JSON file.

A tokenizer is saved as one JSON object whose `"type"` names its class, so a run
directory's `tokenizer.json` is all that `sample` and `eval` need to turn text
into ids and back.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lmforge.errors import LmforgeError


def id_dtype(vocab_size: int) -> type[np.unsignedinteger]:
    """uint16 when every id fits (half the memory and disk), else uint32."""
    return np.uint16 if vocab_size <= 2**16 else np.uint32


class Tokenizer(ABC):
    """Text to token ids and back."""

    kind: ClassVar[str]
    registry: ClassVar[dict[str, type[Tokenizer]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind in Tokenizer.registry:
            raise TypeError(f"two tokenizers claim the kind '{cls.kind}'")
        Tokenizer.registry[cls.kind] = cls

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @abstractmethod
    def encode(self, text: str) -> list[int]: ...

    @abstractmethod
    def decode(self, ids: list[int]) -> str: ...

    def encode_array(self, text: str) -> np.ndarray:
        """Encode a whole corpus to the smallest unsigned integer array that holds its ids."""
        return np.asarray(self.encode(text), dtype=id_dtype(self.vocab_size))

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild this tokenizer, with `"type"` set to its kind."""

    @classmethod
    @abstractmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokenizer: ...

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")


def load_tokenizer(path: str | Path) -> Tokenizer:
    path = Path(path)
    if not path.is_file():
        raise LmforgeError(f"tokenizer file '{path}' does not exist; train one with `lmforge train` or `lmforge tokenizer train`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        kind = data["type"]
    except (ValueError, KeyError, TypeError):
        raise LmforgeError(f"tokenizer file '{path}' is corrupt (not a tokenizer JSON); retrain or restore it") from None
    if kind not in Tokenizer.registry:
        raise LmforgeError(f"tokenizer file '{path}' has unknown type '{kind}'; known: {', '.join(Tokenizer.registry)}")
    return Tokenizer.registry[kind].from_dict(data)
