"""Logits processors: pure functions from logits (B, V) to logits (B, V), and the choice of a token.

`Sampler` applies them in this order, the order of Hugging Face `generate` where
the two overlap:

1. repetition penalty: a token already in the prompt or the output has its logit
   divided by r when positive and multiplied by r when negative (CTRL, Keskar et
   al. 2019), so r > 1 always makes it less likely.
2. presence and frequency penalties (OpenAI's definition): subtract
   `presence` once from every token the output already holds, and `frequency`
   once per earlier occurrence. They count the output only, not the prompt.
3. banned tokens: set to -inf, so nothing after can give them back any mass.
4. temperature: divide by T; below 1 sharpens, above 1 flattens.
5. top-k: keep the k highest logits.
6. top-p (nucleus): keep the smallest set of most likely tokens whose
   probability adds up to at least p; the most likely token is always kept.
7. min-p: keep the tokens whose probability is at least min_p times that of the
   most likely token.

Then greedy decoding takes the argmax, and sampling draws from the softmax.
Penalties come first because they decide which tokens are likely; the filters
come after temperature so that they see the distribution actually sampled from.
Every filter keeps the most likely token, so some token always remains.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from lmforge.config import DecodeConfig

NEG_INF = float("-inf")
Generators = torch.Generator | Sequence[torch.Generator] | None


def repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """`seen` (B, V): the tokens to penalize."""
    if penalty == 1.0:
        return logits
    penalized = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalized, logits)


def presence_frequency_penalty(logits: torch.Tensor, counts: torch.Tensor, presence: float,
                               frequency: float) -> torch.Tensor:
    """`counts` (B, V): the output's occurrences of each token."""
    if presence == 0.0 and frequency == 0.0:
        return logits
    return logits - presence * (counts > 0).to(logits.dtype) - frequency * counts.to(logits.dtype)


def ban_tokens(logits: torch.Tensor, banned: torch.Tensor) -> torch.Tensor:
    if banned.numel() == 0:
        return logits
    return logits.index_fill(-1, banned, NEG_INF)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    if temperature <= 0:
        raise ValueError("temperature must be positive; use greedy decoding for temperature 0")
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Ties with the k-th logit are kept too."""
    if k <= 0 or k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1): the k-th largest logit
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # probability of the tokens ranked above each one
    drop_sorted = mass_before >= p  # already enough mass without this token
    drop_sorted[..., 0] = False  # the most likely token stays, even when rounding says otherwise
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, NEG_INF)


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    if min_p <= 0.0:
        return logits
    probs = logits.softmax(dim=-1)
    threshold = min_p * probs.amax(dim=-1, keepdim=True)  # (B, 1)
    drop = probs < threshold
    drop.scatter_(-1, probs.argmax(dim=-1, keepdim=True), False)
    return logits.masked_fill(drop, NEG_INF)


def draw(probs: torch.Tensor, generators: Generators = None) -> torch.Tensor:
    """One token per row of `probs` (B, V). With one generator per row, row i's draw depends on
    its own generator only, so a sample is the same whether drawn alone or in a batch.

    Per-row generators race exponential noise: the token is argmax(p / q) with q ~ Exp(1), which
    is how `torch.multinomial` draws one sample, so it picks the token multinomial would pick
    with that generator. Only the noise needs a call per row; the division and the argmax are
    one op for the whole batch (a server steps many rows, and calls per row add up).
    """
    if generators is None or isinstance(generators, torch.Generator):
        return torch.multinomial(probs, 1, generator=generators).squeeze(-1)
    if len(generators) != probs.size(0):
        raise ValueError(f"{len(generators)} generators for {probs.size(0)} rows")
    noise = torch.empty_like(probs)
    for row, generator in zip(noise, generators):
        row.exponential_(generator=generator)
    return (probs / noise).argmax(dim=-1)


class Sampler:
    """Every processor of one `DecodeConfig`, with the token counts that the penalties need.

    `prompts` (B, T) and `prompt_mask` (B, T; False at padding) give the tokens the
    repetition penalty counts from the start; `record` adds each chosen token.
    Counts are kept only when a penalty is on, so plain sampling costs nothing extra.
    """

    def __init__(self, cfg: DecodeConfig, vocab_size: int, prompts: torch.Tensor,
                 prompt_mask: torch.Tensor | None = None):
        self.cfg = cfg
        device = prompts.device
        banned = tuple(sorted(set(cfg.banned_ids)))
        self.banned = torch.tensor(banned, dtype=torch.long, device=device)
        # what decides how logits are processed: rows whose samplers agree on it can be chosen together
        # (`choose_rows`), whatever their prompts, seeds, lengths or stop strings
        self.settings = (cfg.is_greedy, cfg.temperature, cfg.top_k, cfg.top_p, cfg.min_p, cfg.repetition_penalty,
                         cfg.presence_penalty, cfg.frequency_penalty, banned)
        self.seen: torch.Tensor | None = None  # (B, V) bool: in the prompt or the output
        self.counts: torch.Tensor | None = None  # (B, V) int: occurrences in the output
        if cfg.repetition_penalty != 1.0:
            mask = torch.ones_like(prompts, dtype=torch.bool) if prompt_mask is None else prompt_mask
            self.seen = torch.zeros(prompts.size(0), vocab_size, dtype=torch.bool, device=device)
            rows, cols = mask.nonzero(as_tuple=True)  # real prompt tokens only, never the padding
            self.seen[rows, prompts[rows, cols]] = True
        if cfg.presence_penalty != 0.0 or cfg.frequency_penalty != 0.0:
            self.counts = torch.zeros(prompts.size(0), vocab_size, dtype=torch.long, device=device)

    def process(self, logits: torch.Tensor) -> torch.Tensor:
        """Penalties and bans (steps 1-3): what both sampling and beam search use."""
        cfg = self.cfg
        if self.seen is not None:
            logits = repetition_penalty(logits, self.seen, cfg.repetition_penalty)
        if self.counts is not None:
            logits = presence_frequency_penalty(logits, self.counts, cfg.presence_penalty, cfg.frequency_penalty)
        return ban_tokens(logits, self.banned)

    def warp(self, logits: torch.Tensor) -> torch.Tensor:
        """Temperature and the filters (steps 4-7), for sampling only."""
        cfg = self.cfg
        logits = apply_temperature(logits, cfg.temperature)
        return min_p_filter(top_p_filter(top_k_filter(logits, cfg.top_k), cfg.top_p), cfg.min_p)

    def choose(self, logits: torch.Tensor, generators: Generators = None) -> torch.Tensor:
        """Logits (B, V) → the next ids (B,)."""
        logits = self.process(logits.float())
        if self.cfg.is_greedy:
            return logits.argmax(dim=-1)
        return draw(self.warp(logits).softmax(dim=-1), generators)

    def record(self, ids: torch.Tensor) -> None:
        """Count the ids (B,) just chosen."""
        if self.seen is not None:
            self.seen.scatter_(1, ids[:, None], True)
        if self.counts is not None:
            self.counts.scatter_add_(1, ids[:, None], torch.ones_like(ids[:, None]))

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep the counts of `rows` (beam search moves histories between beams)."""
        if self.seen is not None:
            self.seen = self.seen[rows]
        if self.counts is not None:
            self.counts = self.counts[rows]


def choose_rows(samplers: Sequence[Sampler], logits: torch.Tensor, generators: Sequence[torch.Generator | None]
                ) -> torch.Tensor:
    """The next ids (B,) of B rows that each have a one-row sampler, all of the same `settings` (a
    server's requests): one pass of the processors for all the rows, each row drawn with its own
    generator, so every row gets the token its sampler would choose alone. The ids are recorded."""
    joint = samplers[0]
    if len(samplers) > 1:
        joint = copy.copy(joint)  # the shared settings, with the rows' counts stacked (B, V)
        if joint.seen is not None:
            joint.seen = torch.cat([s.seen for s in samplers])
        if joint.counts is not None:
            joint.counts = torch.cat([s.counts for s in samplers])
    ids = joint.choose(logits, generators)
    if joint.seen is not None or joint.counts is not None:
        joint.record(ids)
        for r, sampler in enumerate(samplers):  # rows leave at different steps: each keeps its own counts
            sampler.seen = None if joint.seen is None else joint.seen[r : r + 1]
            sampler.counts = None if joint.counts is None else joint.counts[r : r + 1]
    return ids
