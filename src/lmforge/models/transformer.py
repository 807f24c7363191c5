"""A GPT-style decoder, written to be read top to bottom.

    ids ─► token embedding + learned position embedding ─► dropout
        ─► n_layer × [ x + Attention(Norm(x)) ; x + MLP(Norm(x)) ]   (pre-norm blocks)
        ─► final Norm ─► output head (tied to the token embedding) ─► logits

That is the default; each ModelConfig option swaps one part (docs/04-attention-and-transformers.md).
`step` decodes through a KV cache (models/kv_cache.py); `forward` stays the plain training path.

Shapes: B batch, T time (tokens), C channels (n_embd), nh heads, hs = C / nh.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.config import ModelConfig
from lmforge.models.base import LanguageModel
from lmforge.models.kv_cache import KVCache
from lmforge.models.layers import ATTENTION, RotaryEmbedding, apply_rotary, make_norm


class CausalSelfAttention(nn.Module):
    """Each position attends to itself and the positions before it, in nh heads at once."""

    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.n_head, self.layer = cfg.n_head, layer  # `layer`: which of the KV cache's layers is this one's
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)  # queries, keys, values in one matmul
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.resid_dropout = nn.Dropout(cfg.dropout)
        head_size = cfg.n_embd // cfg.n_head
        # QK-norm: bounded q·k scores, so attention logits cannot blow up at high learning rates
        self.q_norm = make_norm(cfg.norm, head_size, cfg.bias) if cfg.qk_norm else None
        self.k_norm = make_norm(cfg.norm, head_size, cfg.bias) if cfg.qk_norm else None
        self.attend = ATTENTION[cfg.attention]

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 × (B, T, C)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        mask = None
        if cache is not None:  # decoding: attend to the cached keys and values of the tokens before these too
            k, v = cache.write(self.layer, k, v)  # (B, nh, S, hs): S tokens so far, these T included
            k, v, mask = k.to(q.dtype), v.to(q.dtype), cache.mask
        # softmax(q kᵀ / √hs + causal mask) v: fused (FlashAttention or memory-efficient kernels) or written out
        y = self.attend(q, k, v, dropout_p=self.dropout if self.training else 0.0, mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side again
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    """Position-wise: widen, apply a nonlinearity (GELU, squared ReLU, or SwiGLU's gate times a value), project back.

    SwiGLU's hidden size is 2/3 of 4C (rounded up to a multiple of 8), so its three matrices hold about as
    many weights as the other MLPs' two.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.kind = cfg.mlp
        hidden = 8 * math.ceil(8 * cfg.n_embd / 3 / 8) if cfg.mlp == "swiglu" else 4 * cfg.n_embd
        n_in = 2 * hidden if cfg.mlp == "swiglu" else hidden  # swiglu: gate and value in one matmul
        self.fc = nn.Linear(cfg.n_embd, n_in, bias=cfg.bias)
        self.proj = nn.Linear(hidden, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)  # (B, T, hidden) or (B, T, 2·hidden)
        if self.kind == "swiglu":
            gate, value = h.chunk(2, dim=-1)
            h = F.silu(gate) * value
        elif self.kind == "relu2":
            h = F.relu(h).square()
        else:
            h = F.gelu(h)
        return self.dropout(self.proj(h))


class Block(nn.Module):
    """Pre-norm residual block: normalize, transform, add back to the residual stream."""

    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.norm1 = make_norm(cfg.norm, cfg.n_embd, cfg.bias)
        self.attn = CausalSelfAttention(cfg, layer)
        self.norm2 = make_norm(cfg.norm, cfg.n_embd, cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rope, cache)
        x = x + self.mlp(self.norm2(x))
        return x


class Transformer(LanguageModel):
    family = "transformer"
    can_left_pad = True  # attention masks let rows of different lengths share a batch

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg, self.vocab_size = cfg, vocab_size
        self.tok_emb = nn.Embedding(vocab_size, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.n_embd) if cfg.positions == "learned" else None
        self.rotary = RotaryEmbedding(cfg.n_embd // cfg.n_head, cfg.block_size, cfg.rope_base) if cfg.positions == "rope" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.norm = make_norm(cfg.norm, cfg.n_embd, cfg.bias)
        self.head = nn.Linear(cfg.n_embd, vocab_size, bias=False)
        if cfg.tie_weights:
            self.head.weight = self.tok_emb.weight  # tied: reading a token and writing it share one matrix
        self.apply(self._init_weights)
        # GPT-2: scale the projections that write into the residual stream by 1/√(2·n_layer),
        # so the stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def context_size(self) -> int:
        return self.cfg.block_size

    def output_head(self) -> nn.Module:
        return self.head

    def describe(self) -> str:
        c = self.cfg
        return f"transformer ({c.n_layer} layers, {c.n_embd} wide, context {c.block_size})"

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        T = ids.size(1)
        if T > self.cfg.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than the context of {self.cfg.block_size}")
        return self.head(self.features(ids, torch.arange(T, device=ids.device)[None]))  # (B, T, V)

    def features(self, ids: torch.Tensor, positions: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """The final normalized features (B, T, C) of `ids` (B, T) at `positions` (B or 1, T)."""
        x = self.tok_emb(ids)  # (B, T, C)
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)
        x = self.drop(x)
        rope = None
        if self.rotary is not None:  # each row by its own positions: (B or 1, 1, T, hs/2), broadcast over heads
            cos, sin = self.rotary(positions)
            rope = cos[:, None], sin[:, None]
        for block in self.blocks:
            x = block(x, rope, cache)
        return self.norm(x)

    # ------------------------------------------------------------------ incremental decoding

    def new_state(self, batch_size: int, capacity: int | None = None, pad: torch.Tensor | None = None,
                  static: bool = False) -> KVCache:
        """An empty KV cache for `batch_size` rows of up to `capacity` tokens (at most the context)."""
        cfg, weight = self.cfg, self.tok_emb.weight
        capacity = min(capacity or cfg.block_size, cfg.block_size)
        return KVCache(cfg.n_layer, batch_size, cfg.n_head, cfg.n_embd // cfg.n_head, capacity, pad=pad,
                       device=weight.device, dtype=weight.dtype, static=static)

    def step(self, ids: torch.Tensor, state: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        """Feed `ids` (B, T) after the cached tokens: the last position's logits (B, V) and the cache."""
        cache = self.new_state(ids.size(0)) if state is None else state
        if cache.pos + ids.size(1) > cache.capacity:
            return self._recompute_window(ids, cache), cache
        logits = self.decode(ids, cache)
        cache.advance(ids.size(1))
        return logits, cache

    def decode(self, ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """One forward pass of new tokens through the cache, without counting them in (`step` does that)."""
        positions = cache.start(ids)  # (B, T): counts real tokens only, so padding does not shift them
        return self.head(self.features(ids, positions, cache)[:, -1])  # (B, V): only the last position is needed

    def _recompute_window(self, ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """The context is full: refill the cache with the last `block_size` tokens, exactly what `forward` would
        see. Every later step lands here again, so past the context each token costs a full forward pass."""
        if cache.capacity < self.cfg.block_size:
            raise ValueError(f"the cache holds {cache.capacity} tokens; make it with capacity {self.cfg.block_size} "
                             "to decode past it")
        history = torch.cat([cache.ids[:, : cache.pos], ids], dim=1)
        shift = history.size(1) - cache.capacity
        cache.reset((cache.pad - shift).clamp(min=0))
        logits = self.decode(history[:, shift:], cache)
        cache.advance(cache.capacity)
        return logits
