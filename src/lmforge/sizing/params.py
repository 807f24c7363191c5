"""Parameters by part, read off the model itself, built on PyTorch's meta device.

A model built on the meta device has every parameter's shape and no storage, so
counting it costs nothing even for a model far too big for this machine, and the
counts cannot drift from the code that builds the model (a formula kept beside it
would). Each parameter goes to one part by the name of the module that owns it;
`named_parameters` yields a tied weight once, under its first name, so a tied
output head is counted in the token embedding and its row says so.

The n-gram has no parameters: it stores count tables whose sizes depend on the
text it is fitted on (`ngram_tables`).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lmforge.config import ModelConfig
from lmforge.models import build_model
from lmforge.models.base import LanguageModel

PARTS = ("token embedding", "positions", "attention", "MLP", "recurrent cell", "norms", "output head",
         "LoRA adapters")


@dataclass
class Part:
    name: str
    params: int
    note: str = ""


def meta_model(cfg: ModelConfig, vocab_size: int) -> LanguageModel:
    """The model `cfg` describes, with shapes but no storage (nothing is allocated or initialized for real)."""
    with torch.device("meta"):
        return build_model(cfg, vocab_size)


def part_of(name: str) -> str:
    """The part a parameter belongs to, by its dotted name (`blocks.0.attn.qkv.weight` → attention)."""
    owner = name.split(".")[:-1]
    if any(m.startswith("lora_") for m in name.split(".")):
        return "LoRA adapters"
    if owner[:1] == ["tok_emb"]:
        return "token embedding"
    if owner[:1] == ["pos_emb"]:
        return "positions"
    if owner[:1] == ["head"]:
        return "output head"
    if any("norm" in m for m in owner):  # pre-norms, the final norm, and attention's q/k norms
        return "norms"
    if "attn" in owner:
        return "attention"
    if "mlp" in owner:
        return "MLP"
    if owner[:1] == ["cell"]:
        return "recurrent cell"
    return "other"


def parameter_parts(model: nn.Module) -> list[Part]:
    """Distinct parameters by part, in the order of `PARTS`; parts the model lacks are left out."""
    counts: dict[str, int] = {}
    for name, p in model.named_parameters():  # a tied weight once
        part = part_of(name.removeprefix("_orig_mod."))
        counts[part] = counts.get(part, 0) + p.numel()
    parts = [Part(name, counts[name]) for name in (*PARTS, "other") if name in counts]
    head = getattr(model, "head", None)
    tok_emb = getattr(model, "tok_emb", None)
    if head is not None and tok_emb is not None and head.weight is tok_emb.weight:
        parts.insert(next(i for i, p in enumerate(parts) if p.name == "token embedding") + 1,
                     Part("output head", 0, "tied to the token embedding, counted there"))
    return parts


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ------------------------------------------------------------------ n-gram tables


@dataclass
class NGramTables:
    """What a fitted n-gram stores: per order k ≥ 2, its contexts and continuations, as counted or bounded."""

    entries: list[tuple[int, int, int]]  # (order k, contexts, continuations)
    exact: bool  # True: read from a fitted model; False: upper bounds before fitting
    vocab_size: int

    @property
    def numbers(self) -> int:
        """Stored values: the unigram, three discounts per order, and per order k ≥ 2 each context's key, offset
        and backoff weight and each continuation's token and probability."""
        return self.vocab_size + 3 * (len(self.entries) + 1) + sum(3 * h + 1 + 2 * e for _, h, e in self.entries)

    @property
    def bytes(self) -> int:
        return 8 * self.numbers  # every table is int64 or float64


def ngram_bounds(order: int, vocab_size: int, train_tokens: int | None) -> NGramTables:
    """Before fitting: order k has at most min(V^k, train tokens) distinct k-grams, and contexts likewise."""
    def most(k: int) -> int:
        return vocab_size**k if train_tokens is None else min(vocab_size**k, max(train_tokens - k + 1, 0))
    return NGramTables([(k, most(k - 1), most(k)) for k in range(2, order + 1)], False, vocab_size)


def ngram_fitted(weights: Path, order: int, vocab_size: int) -> NGramTables:
    """A fitted n-gram's table sizes, read from the header of its model.safetensors (the tensors stay on disk)."""
    with open(weights, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    entries = []
    for k in range(2, order + 1):
        level = f"levels.{k - 2}."
        entries.append((k, header[level + "contexts"]["shape"][0], header[level + "next_ids"]["shape"][0]))
    return NGramTables(entries, True, vocab_size)
