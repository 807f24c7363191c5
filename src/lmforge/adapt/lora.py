"""LoRA (Hu et al., 2021): adapt a frozen weight by a low-rank update that trains instead.

A linear layer's weight W (out × in) stays frozen; beside it two small matrices train,
A (r × in) and B (out × r), and the layer computes

    y = x Wᵀ + b + (α / r) · dropout(x) Aᵀ Bᵀ

With r ≪ min(in, out) that is r·(in + out) weights instead of in·out. B starts at zero,
so before the first step the adapted model is exactly the base model; A starts random, so
B's gradient is not zero. `merge` folds the update into W (W + (α/r)·B A): the merged model
is an ordinary model again, as fast as the base and equal to the adapted one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from lmforge.errors import LmforgeError

DEFAULT_TARGETS = ("qkv", "proj", "fc")  # a transformer's attention and MLP matrices


class LoRALinear(nn.Module):
    """`base` (frozen) plus a trainable rank-`rank` update scaled by `alpha / rank`."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        self.base = base
        base.requires_grad_(False)
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # as nn.Linear initializes its weight
        self.scale = alpha / rank
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.dropout(x) @ self.lora_a.T @ self.lora_b.T) * self.scale

    def merged(self) -> nn.Linear:
        """A plain linear layer computing the same function (without dropout)."""
        layer = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None,
                          device=self.base.weight.device, dtype=self.base.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(self.base.weight + self.scale * (self.lora_b @ self.lora_a))
            if self.base.bias is not None:
                layer.bias.copy_(self.base.bias)
        return layer


def add_lora(model: nn.Module, rank: int, alpha: float, dropout: float = 0.0,
             targets: Sequence[str] = DEFAULT_TARGETS) -> list[str]:
    """Freeze `model` and wrap each linear layer whose name ends with a target (`qkv`, `attn.proj`, ...) in a
    `LoRALinear`; the names wrapped. Only the adapters then have `requires_grad`."""
    if rank < 1 or not 0 < alpha < math.inf or not 0 <= dropout < 1:  # `not`: nan fails too
        raise LmforgeError(f"LoRA needs --lora-rank >= 1, a finite --lora-alpha > 0 and 0 <= --lora-dropout < 1 "
                           f"(got {rank}, {alpha}, {dropout})")
    model.requires_grad_(False)
    linear = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    chosen = [name for name in linear if any(name == t or name.endswith("." + t) for t in targets)]
    if not chosen:
        raise LmforgeError(f"--lora-targets {','.join(targets)} match no linear layer; names end with e.g. "
                           f"{', '.join(sorted({n.rsplit('.', 1)[-1] for n in linear}))}")
    for name in chosen:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, LoRALinear(linear[name], rank, alpha, dropout))
    return chosen


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapters' tensors (what a LoRA run saves: kilobytes, not the base model)."""
    return {name: t.detach().contiguous() for name, t in model.state_dict().items() if ".lora_" in name}


def merge_lora(model: nn.Module) -> int:
    """Fold every adapter into its base weight, in place; how many layers were merged."""
    wrapped = [(name, m) for name, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name, module in wrapped:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, module.merged())
    model.requires_grad_(True)
    return len(wrapped)
