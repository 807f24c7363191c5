"""`lmforge tokenizer inspect`: what a tokenizer does to a given text (docs/01-tokens.md reads its report).

Coverage matters because a token the text never uses is an embedding row that never learns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from lmforge.tokenizers.base import Tokenizer

WIDTHS = (128, 384, 768)  # n_embd values to price the embedding at


@dataclass
class TokenizerReport:
    kind: str
    vocab_size: int
    specials: dict[str, int]
    bytes: int
    chars: int
    tokens: int
    unknown: int
    used: int  # distinct ids the text uses
    longest: list[dict]  # {"id", "token", "bytes"}
    frequent: list[dict]  # {"id", "token", "count", "share"}
    embedding_params: dict[int, int]  # n_embd → V × n_embd
    tokens_per_byte: float = field(init=False)
    unknown_rate: float = field(init=False)
    coverage: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens_per_byte = self.tokens / max(self.bytes, 1)
        self.unknown_rate = self.unknown / max(self.tokens, 1)
        self.coverage = self.used / max(self.vocab_size, 1)

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        specials = ", ".join(f"{r}={i}" for r, i in self.specials.items()) or "none"
        return "\n".join([
            f"{self.kind} tokenizer: {self.vocab_size:,} tokens (specials: {specials})",
            f"text: {self.bytes:,} bytes, {self.chars:,} characters → {self.tokens:,} tokens",
            f"tokens per byte   {self.tokens_per_byte:.4f}  ({1 / max(self.tokens_per_byte, 1e-12):.2f} bytes per token,"
            f" {self.chars / max(self.tokens, 1):.2f} characters per token)",
            f"unknown rate      {self.unknown_rate:.4%}  ({self.unknown:,} tokens lost text)",
            f"coverage          {self.coverage:.2%}  ({self.used:,} of {self.vocab_size:,} tokens appear;"
            f" {self.vocab_size - self.used:,} never do)",
            "embedding cost    " + ", ".join(f"{p:,} parameters at n_embd {w}" for w, p in self.embedding_params.items())
            + " (tied head; twice that untied)",
            "longest tokens    " + "  ".join(f"{t['token']} ({t['bytes']} B)" for t in self.longest),
            "most frequent     " + "  ".join(f"{t['token']} {t['share']:.2%}" for t in self.frequent),
        ])


def inspect_tokenizer(tokenizer: Tokenizer, texts: Iterable[str], top: int = 10) -> TokenizerReport:
    """Encode `texts` (streamed: any amount) and summarize."""
    counts = np.zeros(tokenizer.vocab_size, dtype=np.int64)
    n_bytes = n_chars = unknown = 0
    for text in texts:
        counts += np.bincount(tokenizer.encode_array(text), minlength=tokenizer.vocab_size)
        n_bytes += len(text.encode("utf-8"))
        n_chars += len(text)
        unknown += tokenizer.unknown_count(text)
    tokens = int(counts.sum())
    lengths = np.array([len(tokenizer.token_bytes(i)) for i in range(tokenizer.vocab_size)])
    specials = set(tokenizer.specials.values())
    by_length = [i for i in np.argsort(-lengths, kind="stable") if i not in specials][:top]
    by_count = [i for i in np.argsort(-counts, kind="stable")[:top] if counts[i] > 0]
    show = lambda i: repr(tokenizer.token_bytes(i).decode("utf-8", "backslashreplace"))  # noqa: E731
    return TokenizerReport(
        tokenizer.kind, tokenizer.vocab_size, tokenizer.specials, n_bytes, n_chars, tokens, unknown,
        used=int((counts > 0).sum()),
        longest=[{"id": int(i), "token": show(i), "bytes": int(lengths[i])} for i in by_length],
        frequent=[{"id": int(i), "token": show(i), "count": int(counts[i]), "share": float(counts[i] / max(tokens, 1))}
                  for i in by_count],
        embedding_params={w: tokenizer.vocab_size * w for w in WIDTHS},
    )
