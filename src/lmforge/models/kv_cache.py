"""The key/value cache that lets a transformer decode one token per step.

Each layer keeps the keys and values it has already computed, so a step computes only the new
tokens' and attends to the stored ones, instead of re-running the whole context:

    cache = model.new_state(batch_size, capacity)     # preallocated, empty
    logits, cache = model.step(prompt_ids, cache)    # prefill: the whole prompt at once
    logits, cache = model.step(next_ids, cache)      # then one token per step

The model drives it explicitly: `start` before the layers (positions, attention mask), `write`
in each layer, `advance` after the last one. Rows are left-padded to a common length: slot s of
row b is a real token when s >= pad[b]; positions count real tokens only and no real token
attends to padding, so a padded row computes what it would alone. Static mode keeps every shape
fixed (a step attends over all `capacity` slots, the empty ones masked, and writes at a slot held
on the device), which lets `torch.compile` capture a step in a CUDA graph (generation/fast.py);
eager mode slices to the filled slots, the cheaper choice on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class KVCache:
    def __init__(self, n_layer: int, batch_size: int, n_head: int, head_dim: int, capacity: int, *,
                 pad: torch.Tensor | None = None, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32, static: bool = False):
        shape = (n_layer, batch_size, n_head, capacity, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)  # (L, B, nh, capacity, hs)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.ids = torch.zeros(batch_size, capacity, dtype=torch.long, device=device)  # the tokens, for recomputing
        self.capacity = capacity
        self.static = static
        self.slot = torch.zeros(1, dtype=torch.long, device=device)  # == pos, on the device: the static write index
        self.pad = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.reset(pad)

    @property
    def batch_size(self) -> int:
        return self.k.size(1)

    def reset(self, pad: torch.Tensor | None = None) -> None:
        """Empty the cache; `pad` (B,) counts the left-padding tokens each row will start with."""
        self.pos = 0  # slots filled, the same for every row
        self.slot.zero_()  # in place, like `pad`: a compiled step may hold on to these very tensors
        if pad is None:
            self.pad.zero_()
        else:
            self.pad.copy_(pad)
        self.padded = pad is not None and bool(pad.any())  # decided once here, so no step has to ask the device
        # for the tokens being fed: (B, 1, T, keys), True = may attend; None = the attention's own causal
        # mask, aligned so that the T queries are the last T of the keys
        self.mask: torch.Tensor | None = None

    # ------------------------------------------------------------------ a step

    def start(self, ids: torch.Tensor) -> torch.Tensor:
        """Take in the tokens `ids` (B, T) about to be fed; return their position ids (B, T) and set `mask`."""
        T = ids.size(1)
        if self.static and T == 1:
            return self._start_static(ids)
        if self.pos + T > self.capacity:
            raise ValueError(f"the cache holds {self.capacity} tokens; {self.pos} are used and {T} more do not fit")
        slots = torch.arange(self.pos, self.pos + T, device=ids.device)  # (T,)
        self.ids[:, self.pos : self.pos + T] = ids
        keys = torch.arange(self.pos + T, device=ids.device)  # (S,) every filled slot, this step's included
        self.mask = None
        if self.padded:
            real = keys[None, :] >= self.pad[:, None]  # (B, S)
            own = keys[None, :] == slots[:, None]  # (T, S): a padding token attends to itself, so no row is empty
            allowed = (keys[None, :] <= slots[:, None]) & (real[:, None, :] | own)  # (B, T, S)
            self.mask = allowed[:, None]  # (B, 1, T, S)
        return (slots[None, :] - self.pad[:, None]).clamp(min=0)  # (B, T)

    def _start_static(self, ids: torch.Tensor) -> torch.Tensor:
        """One token, every shape fixed: attend over all slots, mask the empty ones; no Python ints that change."""
        self.ids.index_copy_(1, self.slot, ids)
        keys = torch.arange(self.capacity, device=ids.device)  # (capacity,)
        allowed = (keys <= self.slot) & ((keys[None, :] >= self.pad[:, None]) | (keys == self.slot))  # (B, capacity)
        self.mask = allowed[:, None, None, :]  # (B, 1, 1, capacity)
        return (self.slot - self.pad).clamp(min=0)[:, None]  # (B, 1)

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's keys and values (B, nh, T, hs) of `layer`; return all of them so far (B, nh, S, hs)."""
        k, v = k.to(self.k.dtype), v.to(self.v.dtype)
        if self.static and k.size(2) == 1:
            self.k[layer].index_copy_(2, self.slot, k)
            self.v[layer].index_copy_(2, self.slot, v)
            return self.k[layer], self.v[layer]
        end = self.pos + k.size(2)
        self.k[layer, :, :, self.pos : end] = k
        self.v[layer, :, :, self.pos : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, n: int) -> None:
        """Count the `n` tokens just fed through every layer."""
        self.pos += n
        if self.static:
            self.slot.add_(n)

    # ------------------------------------------------------------------ whole caches

    def prefill(self, other: KVCache) -> None:
        """Copy `other`'s filled slots into this cache; a batch-1 `other` is copied into every row."""
        if other.pos > self.capacity or other.batch_size not in (1, self.batch_size):
            raise ValueError(f"cannot prefill a cache of batch {self.batch_size} and capacity {self.capacity} "
                             f"from one of batch {other.batch_size} holding {other.pos} tokens")
        self._put(slice(None), slice(0, other.pos), other, slice(None), slice(0, other.pos))
        self._filled(other.pad.expand(self.batch_size).clone(), other.pos)

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep rows `rows` (B',) in that order: beam search moves each beam's history to its new place."""
        self.k = self.k.index_select(1, rows)
        self.v = self.v.index_select(1, rows)
        self.ids = self.ids.index_select(0, rows)
        self.pad = self.pad.index_select(0, rows)

    def select(self, rows: torch.Tensor) -> KVCache:
        """A new cache of rows `rows` (R,) only, without the leading slots that are padding in all of them
        (so a batch whose longest row left does not keep paying for its length)."""
        pad = self.pad.index_select(0, rows)
        cut = int(pad.min()) if rows.numel() else self.pos
        n = self.pos - cut
        # whole rows in one pass each (a server selects at every step some row leaves), then the kept slots moved
        # left; the slots past them hold old keys, never read before a step writes them
        out = self._around(self.k.index_select(1, rows), self.v.index_select(1, rows), self.ids.index_select(0, rows))
        if cut and n:
            out.k[:, :, :, :n] = out.k[:, :, :, cut : self.pos].clone()
            out.v[:, :, :, :n] = out.v[:, :, :, cut : self.pos].clone()
            out.ids[:, :n] = out.ids[:, cut : self.pos].clone()
        out._filled(pad - cut, n)
        return out

    @staticmethod
    def stack(caches: list[KVCache]) -> KVCache:
        """One cache holding the rows of `caches` in order, right-aligned: every row's tokens end at the same
        slot, a shorter row getting more left padding. Positions count real tokens only, so a row's keys and
        values stay valid where they move. Eager caches of one shape only (not static ones)."""
        pos = max(c.pos for c in caches)

        def aligned(c: KVCache, name: str) -> torch.Tensor:
            """c's keys, values or ids with its filled slots moved to end at `pos` (zeros before them)."""
            t = getattr(c, name)
            if c.pos == pos:
                return t  # as it is: its slots past `pos` are never read before a step writes them
            if name == "ids":  # (B, capacity)
                return F.pad(t[:, : c.pos], (pos - c.pos, c.capacity - pos))
            return F.pad(t[:, :, :, : c.pos], (0, 0, pos - c.pos, c.capacity - pos))  # (L, B, nh, capacity, hs)

        out = caches[0]._around(*(torch.cat([aligned(c, name) for c in caches], dim=0 if name == "ids" else 1)
                                  for name in ("k", "v", "ids")))
        out._filled(torch.cat([c.pad + pos - c.pos for c in caches]), pos)
        return out

    def _put(self, rows, slots: slice, src: KVCache, src_rows, src_slots: slice) -> None:
        """Copy `src`'s keys, values and ids at (src_rows, src_slots) to (rows, slots) of this cache."""
        self.k[:, rows, :, slots] = src.k[:, src_rows, :, src_slots]
        self.v[:, rows, :, slots] = src.v[:, src_rows, :, src_slots]
        self.ids[rows, slots] = src.ids[src_rows, src_slots]

    def _around(self, k: torch.Tensor, v: torch.Tensor, ids: torch.Tensor) -> KVCache:
        """An eager cache of this one's shape holding `k`, `v` and `ids` (not zeroed: no copy of the slots)."""
        out = self._empty(0)
        out.k, out.v, out.ids = k, v, ids
        out.pad = torch.zeros(k.size(1), dtype=torch.long, device=k.device)
        return out

    def _empty(self, batch_size: int) -> KVCache:
        L, _, nh, capacity, hs = self.k.shape
        return KVCache(L, batch_size, nh, hs, capacity, device=self.k.device, dtype=self.k.dtype)

    def _filled(self, pad: torch.Tensor, pos: int) -> None:
        self.reset(pad)
        self.advance(pos)

