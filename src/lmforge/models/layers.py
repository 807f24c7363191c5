"""What the transformer chooses between by configuration: the norm, rotary positions, and attention
written out step by step beside the fused kernel it must agree with.

Shapes: B batch, nh heads, T time (queries), S keys (S = T without a cache), hs head size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def make_norm(kind: str, dim: int, bias: bool) -> nn.Module:
    """`layernorm` (centre, scale, optional bias) or `rmsnorm` (scale only)."""
    if kind == "rmsnorm":  # x / sqrt(mean(x²) + eps) · g: LayerNorm without centring or bias
        return nn.RMSNorm(dim, eps=1e-6)
    return nn.LayerNorm(dim, bias=bias)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE; Su et al., 2021): channels i and i + hs/2 of a head rotate together by the
    angle pos · base^(-2i/hs). The cos/sin tables are not weights: rebuilt from the config, never saved."""

    def __init__(self, head_size: int, max_positions: int, base: float = 10000.0):
        super().__init__()
        inv_freq = base ** (-torch.arange(0, head_size, 2, dtype=torch.float64) / head_size)  # (hs/2,)
        angles = torch.arange(max_positions, dtype=torch.float64)[:, None] * inv_freq[None, :]  # (P, hs/2)
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for the positions `pos` (T,): two (T, hs/2) tables."""
        return self.cos[pos], self.sin[pos]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x[i], x[i + hs/2]) of x (B, nh, T, hs) by the angle whose cos/sin are given (T, hs/2)."""
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def causal_mask(T: int, S: int, device: torch.device) -> torch.Tensor:
    """(T, S) booleans, True where query t may look at key s: s ≤ t, the queries being the last T of S positions."""
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0,
                       mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q kᵀ / √hs, masked to the past) v, one step per line. q (B, nh, T, hs); k, v (B, nh, S, hs).
    `mask` (broadcast to (B, nh, T, S), True = may attend) replaces the causal mask, e.g. to skip padding."""
    T, S, hs = q.size(-2), k.size(-2), q.size(-1)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, T, S): how well each query matches each key
    allowed = causal_mask(T, S, q.device) if mask is None else mask
    scores = scores.masked_fill(~allowed, float("-inf"))  # no looking ahead
    weights = scores.softmax(dim=-1)  # (B, nh, T, S): each row sums to 1
    weights = F.dropout(weights, p=dropout_p, training=dropout_p > 0)
    return weights @ v  # (B, nh, T, hs): a weighted mean of the values


def fused_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """The same computation in one kernel (FlashAttention or memory-efficient where available)."""
    T, S = q.size(-2), k.size(-2)
    if mask is not None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    if T == S:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
    if T == 1:  # one new token after cached ones sees them all: no mask to build
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    # is_causal aligns the mask top-left; queries that follow cached keys need it aligned bottom-right
    return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(T, S, q.device), dropout_p=dropout_p)


ATTENTION = {"fused": fused_attention, "explicit": explicit_attention}
