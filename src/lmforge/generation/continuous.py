"""Continuous batching: rows join a running batch between two steps and leave it as soon as they end.

    batch = ContinuousBatch(model)
    rows = batch.add(prompt_ids, cfg, [generator])     # fed and decoded from the next step on
    while batch.rows:
        for row, step in batch.step():                # one token for every row; `step` is a one-row `Step`
            ...
        batch.remove(row)                             # e.g. a client went away; EOS and max_new_tokens
                                                      # end a row by themselves

`decode` (decode.py) serves a batch whose rows are all known at the start; a server
gets requests one at a time while others are half-way through. Here each row keeps
its own `DecodeConfig` (its own `Sampler`: temperature, filters, penalties) and its
own generator. The prompts that arrive between two steps are fed in one call,
left-padded; from then on a transformer's rows share one KV cache, right-aligned (left
padding, masked), so one forward pass steps them all. A row's step depends on no other
row (padding is masked, each draw uses the row's own generator), so a row gets the
tokens `decode` gives it alone: a seeded request is the same text alone or among others.

What a step costs beyond the model call is kept from growing with the rows: rows with
equal sampling settings share one pass of the processors (`choose_rows`), and the only
per-row calls left are each row's draw of noise from its own generator and the Python
that hands each row its token.

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
from lmforge.generation.decode import Step, left_pad, logprob_info, model_device
from lmforge.generation.processors import Sampler, choose_rows
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


def select_state(model: LanguageModel, state: Any, rows: torch.Tensor) -> Any:
    """The decoding state of `rows` (R,), in that order: a KV cache's own `select` (which also trims the padding
    the kept rows share), or the family's `reorder_state`."""
    if isinstance(state, KVCache):
        return state.select(rows)
    return state if state is None else model.reorder_state(state, rows)


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
        self.state = select_state(model, self.state, index)
        if self.logits is not None:
            self.logits = self.logits.index_select(0, index)


@dataclass(eq=False)
class _Prompt:
    """A prompt not yet fed, and the rows that continue it."""

    ids: tuple[int, ...]
    rows: list[Row]


class ContinuousBatch:
    def __init__(self, model: LanguageModel):
        self.model = model
        self.device = model_device(model)
        self.groups: list[_Group] = []
        self.waiting: list[_Prompt] = []  # fed, and joining, at the next step

    @property
    def rows(self) -> list[Row]:
        """The rows still decoding, in the batch or about to join it."""
        return [row for rows in [g.rows for g in self.groups] + [p.rows for p in self.waiting] for row in rows
                if not row.ended]

    @torch.inference_mode()
    def add(self, prompt: Sequence[int], cfg: DecodeConfig, generators: Sequence[torch.Generator | None],
            logprobs: int | None = None, tags: Sequence[Any] | None = None) -> list[Row]:
        """One row per generator, each continuing `prompt`. The prompt is fed at the next `step` (once for all
        its rows, and in one model call with the other prompts that arrived meanwhile), where the rows take
        their first token."""
        if not prompt:
            raise ValueError("every prompt needs at least one token")
        tags = list(tags) if tags is not None else [None] * len(generators)
        if cfg.max_new_tokens == 0:
            return [Row(cfg, None, g, logprobs, ended=True, tag=t) for g, t in zip(generators, tags)]
        ids = torch.tensor([list(prompt)], dtype=torch.long, device=self.device)  # (1, T): the penalties' counts
        rows = [Row(cfg, Sampler(cfg, self.model.vocab_size, ids), g, logprobs, tag=t)
                for g, t in zip(generators, tags)]
        self.waiting.append(_Prompt(tuple(prompt), rows))
        return rows

    def remove(self, row: Row) -> None:
        """End `row` now: it takes no further step, and its place in the batch is freed at the next one."""
        row.ended = True

    @torch.inference_mode()
    def drop_ended(self) -> None:
        """Take the ended rows out now, freeing their share of the cache. `step` does it first; a server calls
        it when the last rows end or leave, so an idle batch holds no memory until the next request."""
        self.groups = [g for g in (self._without_ended(g) for g in self.groups) if g is not None]
        for p in self.waiting:
            p.rows = [row for row in p.rows if not row.ended]
        self.waiting = [p for p in self.waiting if p.rows]  # a prompt whose rows all left is never fed

    @torch.inference_mode()
    def step(self) -> list[tuple[Row, Step]]:
        """Feed every row its last token, let the waiting rows join, and choose one token for every row."""
        self.drop_ended()
        self._move_full_rows()
        for g in self.groups:
            tokens = torch.tensor([[row.token] for row in g.rows], dtype=torch.long, device=self.device)  # (B, 1)
            g.logits, g.state = self.model.step(tokens, g.state)
        for g in self._feed_prompts():
            self._join(g)
        self.waiting = []
        return [out for g in self.groups for out in self._choose(g)]

    def _choose(self, g: _Group) -> list[tuple[Row, Step]]:
        """One token for every row of `g`. Per row only what must be: its generator's noise, and Python
        bookkeeping; the processors run once per set of rows with equal settings, the log-probabilities
        once for the rows that asked for them, and one `tolist` brings every token to Python."""
        logits = g.logits.float()  # (B, V)
        ids = torch.empty(len(g.rows), dtype=torch.long, device=self.device)
        for index, rows in _by_settings(g.rows, self.device):
            ids[index] = choose_rows([row.sampler for row in rows], logits[index], [row.generator for row in rows])
        infos = _logprobs(g.rows, logits, ids)
        alive = torch.ones(1, dtype=torch.bool, device=self.device)  # shared by every row's `Step`: read-only
        out = []
        for r, (row, token) in enumerate(zip(g.rows, ids.tolist())):
            row.token = token
            row.produced += 1
            row.ended = token == row.cfg.eos_id or row.produced >= row.cfg.max_new_tokens
            out.append((row, Step(ids[r : r + 1], alive, *infos.get(r, (None, None, None)))))
        g.logits = None
        return out

    def _feed_prompts(self) -> list[_Group]:
        """The waiting prompts fed, as groups about to join. A family that masks left padding feeds them all in
        one call, left-padded, except a prompt that fills the context, fed alone as `decode` feeds it (its
        window slides); other families feed each alone. A prompt is computed once for all its rows, and for
        every request that sent the same one."""
        waiting, context = self.waiting, self.model.context_size
        together = [p for p in waiting if context is None or len(p.ids) < context] if self.model.can_left_pad else []
        alone = [[p] for p in waiting if p not in together]
        return [self._feed(prompts) for prompts in ([together] if together else []) + alone]

    def _feed(self, prompts: list[_Prompt]) -> _Group:
        """One model call for `prompts`: a group of their rows, with the logits of their first choice."""
        distinct = list(dict.fromkeys(p.ids for p in prompts))  # equal prompts are computed once, as `decode` does
        ids, pad = left_pad(distinct, self.device)  # (P, T), (P,)
        state = self.model.new_state(len(distinct), pad=pad if len(distinct) > 1 else None)
        logits, state = self.model.step(ids, state)  # (P, V)
        rows = [row for p in prompts for row in p.rows]
        if len(rows) > len(distinct):  # each row starts from its prompt's state
            which = {prompt: i for i, prompt in enumerate(distinct)}
            index = torch.tensor([which[p.ids] for p in prompts for _ in p.rows], device=self.device)
            state = select_state(self.model, state, index)
            logits = logits.index_select(0, index)
        return _Group(rows, state, logits)

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


def _by_settings(rows: list[Row], device: torch.device) -> list[tuple[slice | torch.Tensor, list[Row]]]:
    """The rows of equal sampler settings, each set with its rows' places in the batch (a slice, so no copy,
    when that is every row: the usual case of one kind of request)."""
    sets: dict[tuple, list[int]] = {}
    for r, row in enumerate(rows):
        sets.setdefault(row.sampler.settings, []).append(r)
    if len(sets) == 1:
        return [(slice(None), rows)]
    return [(torch.tensor(index, device=device), [rows[r] for r in index]) for index in sets.values()]


def _logprobs(rows: list[Row], logits: torch.Tensor, ids: torch.Tensor) -> dict[int, tuple]:
    """Row index → (logprob (1,), top ids (1, k), top logprobs (1, k)) for the rows that asked, computed in
    one call for all of them at the largest k they asked for and cut to each row's."""
    asked = [r for r, row in enumerate(rows) if row.logprobs is not None]
    if not asked:
        return {}
    index = torch.tensor(asked, device=ids.device)
    k = max(rows[r].logprobs for r in asked)
    chosen, top_ids, top_logprobs = logprob_info(logits[index], ids[index], k)
    out = {}
    for i, r in enumerate(asked):
        n = rows[r].logprobs
        out[r] = (chosen[i : i + 1], None if n == 0 else top_ids[i : i + 1, :n],
                  None if n == 0 else top_logprobs[i : i + 1, :n])
    return out
