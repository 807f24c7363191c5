"""Continuous batching: rows join a running batch between two steps and leave it as soon as they end.

    batch = ContinuousBatch(model)
    rows = batch.add(prompt_ids, cfg, [generator])     # prefilled now, decoded from the next step on
    while batch.rows:
        for row, step in batch.step():                # one token for every row; `step` is a one-row `Step`
            ...
        batch.remove(row)                             # e.g. a client went away; EOS and max_new_tokens
                                                      # end a row by themselves

`decode` (decode.py) serves a batch whose rows are all known at the start; a server
gets requests one at a time while others are half-way through. Here each row keeps
its own `DecodeConfig` (its own `Sampler`: temperature, filters, penalties) and its
own generator, and its prompt is fed alone, as `decode` feeds a single prompt. From
then on a transformer's rows share one KV cache, right-aligned (left padding, masked),
so one forward pass steps them all. A row's step depends on no other row (padding is
masked, each draw uses the row's own generator), so a row gets the tokens `decode`
gives it alone: a seeded request is the same text alone or among others.

A row whose text reaches the context moves to a second group, every step of which
recomputes the last context's worth of tokens (as `Transformer.step` does for a
single row): otherwise its overflow would make the whole batch recompute. A family
that cannot mask left padding (n-gram, RNN) keeps each prompt's rows in a group of
their own; the groups are stepped one after another in the same loop, so concurrent
requests take turns token by token instead of being computed together.

Always eager: the static, compiled CUDA step (fast.py) needs a batch whose shape
never changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lmforge.config import DecodeConfig
from lmforge.generation.decode import Step, logprob_info, model_device
from lmforge.generation.processors import Sampler
from lmforge.models.base import LanguageModel
from lmforge.models.kv_cache import KVCache


@dataclass(eq=False)
class Row:
    """One sequence being decoded, with everything that decides its tokens."""

    cfg: DecodeConfig
    sampler: Sampler
    generator: torch.Generator | None
    logprobs: int | None  # None: no log-probabilities; k: the token's and its k most likely alternatives
    produced: int = 0  # tokens chosen so far
    token: int | None = None  # the token chosen at the last step, fed to the model at the next
    ended: bool = False  # by EOS, by max_new_tokens, or removed: no more steps
    tag: Any = field(default=None)  # the caller's: which request and choice this row is


class _Group:
    """Rows that one model call steps together: their state, and the logits of their next choice
    (None while the tokens chosen last are not yet fed)."""

    def __init__(self, rows: list[Row], state: Any, logits: torch.Tensor | None):
        self.rows, self.state, self.logits = rows, state, logits

    @property
    def full(self) -> bool:
        """Whether the group's rows fill the context (only rows that do are grouped with them)."""
        return isinstance(self.state, KVCache) and self.state.pos >= self.state.capacity

    def keep(self, model: LanguageModel, keep: list[int]) -> None:
        index = torch.tensor(keep, dtype=torch.long, device=model_device(model))
        self.rows = [self.rows[i] for i in keep]
        if isinstance(self.state, KVCache):
            self.state = self.state.select(index)
        elif self.state is not None:
            self.state = model.reorder_state(self.state, index)
        if self.logits is not None:
            self.logits = self.logits.index_select(0, index)


class ContinuousBatch:
    def __init__(self, model: LanguageModel):
        self.model = model
        self.device = model_device(model)
        self.groups: list[_Group] = []
        self.waiting: list[_Group] = []  # prefilled, joining at the next step

    @property
    def rows(self) -> list[Row]:
        """The rows still decoding, in the batch or about to join it."""
        return [row for g in self.groups + self.waiting for row in g.rows if not row.ended]

    @torch.inference_mode()
    def add(self, prompt: Sequence[int], cfg: DecodeConfig, generators: Sequence[torch.Generator | None],
            logprobs: int | None = None, tags: Sequence[Any] | None = None) -> list[Row]:
        """One row per generator, each continuing `prompt` (the prompt is computed once for all of them).
        The rows take their first token at the next `step`."""
        if not prompt:
            raise ValueError("every prompt needs at least one token")
        ids = torch.tensor([list(prompt)], dtype=torch.long, device=self.device)  # (1, T)
        tags = list(tags) if tags is not None else [None] * len(generators)
        if cfg.max_new_tokens == 0:
            return [Row(cfg, None, g, logprobs, ended=True, tag=t) for g, t in zip(generators, tags)]
        logits, state = self.model.step(ids, self.model.new_state(1))  # (1, V)
        n = len(generators)
        rows = [Row(cfg, Sampler(cfg, logits.size(-1), ids), g, logprobs, tag=t) for g, t in zip(generators, tags)]
        if n > 1:
            state = KVCache.stack([state] * n) if isinstance(state, KVCache) else \
                self.model.reorder_state(state, torch.zeros(n, dtype=torch.long, device=self.device))
        self.waiting.append(_Group(rows, state, logits.expand(n, -1)))
        return rows

    def remove(self, row: Row) -> None:
        """End `row` now: it takes no further step, and its place in the batch is freed at the next one."""
        row.ended = True

    @torch.inference_mode()
    def drop_ended(self) -> None:
        """Take the ended rows out now, freeing their share of the cache. `step` does it first; a server calls
        it when the last rows end or leave, so an idle batch holds no memory until the next request."""
        self.groups = [g for g in (self._without_ended(g) for g in self.groups) if g is not None]
        self.waiting = [g for g in (self._without_ended(g) for g in self.waiting) if g is not None]

    @torch.inference_mode()
    def step(self) -> list[tuple[Row, Step]]:
        """Feed every row its last token, let the waiting rows join, and choose one token for every row."""
        self.drop_ended()
        self._move_full_rows()
        for g in self.groups:
            tokens = torch.tensor([[row.token] for row in g.rows], dtype=torch.long, device=self.device)  # (B, 1)
            g.logits, g.state = self.model.step(tokens, g.state)
        for g in self.waiting:
            self._join(g)
        self.waiting = []
        return [out for g in self.groups for out in self._choose(g)]

    def _choose(self, g: _Group) -> list[tuple[Row, Step]]:
        out = []
        logits = g.logits.float()
        for r, row in enumerate(g.rows):
            x = logits[r : r + 1]  # (1, V)
            token = row.sampler.choose(x, [row.generator])  # (1,): the row's own generator, as `decode` draws
            row.sampler.record(token)
            row.token = int(token)
            row.produced += 1
            row.ended = row.token == row.cfg.eos_id or row.produced >= row.cfg.max_new_tokens
            out.append((row, Step(token, torch.ones(1, dtype=torch.bool, device=token.device), *logprob_info(x, token, row.logprobs))))
        g.logits = None
        return out

    def _without_ended(self, g: _Group) -> _Group | None:
        keep = [i for i, row in enumerate(g.rows) if not row.ended]
        if not keep:
            return None
        if len(keep) < len(g.rows):
            g.keep(self.model, keep)
        return g

    def _move_full_rows(self) -> None:
        """Rows whose text fills the context leave the shared group for the full one before the next feed."""
        shared = self._shared()
        if shared is None or not shared.full:
            return
        pads = shared.state.pad.tolist()
        full = [i for i, pad in enumerate(pads) if pad == 0]
        rest = [i for i, pad in enumerate(pads) if pad > 0]
        index = torch.tensor(full, dtype=torch.long, device=self.device)
        moved = _Group([shared.rows[i] for i in full], shared.state.select(index), None)
        self.groups.remove(shared)
        if rest:
            shared.keep(self.model, rest)
            self.groups.append(shared)
        self._join(moved)

    def _shared(self, full: bool = False) -> _Group | None:
        return next((g for g in self.groups if isinstance(g.state, KVCache) and g.full == full), None)

    def _join(self, new: _Group) -> None:
        """Put `new` into the group it can share a model call with, or make it a group of its own."""
        if not isinstance(new.state, KVCache):
            self.groups.append(new)  # a family that cannot mask padding: rows of one prompt only
            return
        into = self._shared(new.full)
        if into is None:
            self.groups.append(new)
            return
        into.state = KVCache.stack([into.state, new.state])
        into.rows = into.rows + new.rows
        assert (into.logits is None) == (new.logits is None), "groups join only when both are fed or both are not"
        if into.logits is not None:
            into.logits = torch.cat([into.logits, new.logits])
