"""A count-based n-gram model with interpolated Kneser-Ney smoothing (the formulas: docs/02-counting.md).

Each order's discounted counts are interpolated with the next shorter context's distribution, down to a
uniform guess, so every context gets a distribution with every token above zero. The top order counts
occurrences, the lower orders continuations; modified KN (the default) uses three discounts per order.

Storage is NumPy arrays, not dictionaries: a k-gram of token ids is one int64
key (its ids as digits in base V), the keys are sorted, and a context is found
by binary search (`searchsorted`). Each order keeps its contexts, the offsets of
their continuations, each continuation's token and discounted probability, and
each context's backoff weight γ. These are buffers, saved in model.safetensors
like any weights.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lmforge.config import ModelConfig
from lmforge.errors import LmforgeError
from lmforge.models.base import LanguageModel

KEY_LIMIT = 2**63  # n-gram keys are int64
CHUNK_VALUES = 1 << 22  # positions × vocabulary computed at once in forward (32 MiB of float64)
MIN_DISCOUNT = 0.05  # a floor that keeps every backoff weight, hence every probability, above zero


def kn_discounts(counts: np.ndarray, modified: bool) -> np.ndarray:
    """Discounts (D₁, D₂, D₃₊) for one order, from the counts of counts; each clipped to (0, r] for count r."""
    n1, n2, n3, n4 = (int(np.count_nonzero(counts == r)) for r in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2) if n1 > 0 and n2 > 0 else 0.5  # 0.5 when the text is too small to estimate it
    ratio = [b / a if a > 0 else 0.0 for a, b in ((n1, n2), (n2, n3), (n3, n4))]  # n₂/n₁, n₃/n₂, n₄/n₃
    # modified: D_r = r − (r+1) · Y · n_{r+1} / n_r for r = 1, 2, 3+
    d = np.array([r - (r + 1) * y * q for r, q in enumerate(ratio, 1)]) if modified else np.full(3, y)
    return np.clip(d, MIN_DISCOUNT, [1.0, 2.0, 3.0])


def count_ngrams(ids: np.ndarray, order: int, vocab_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """For k = 1..order, sorted unique k-gram keys and their counts: raw counts at the top order; below it,
    continuation counts N₁₊(• w), read off the distinct (k+1)-grams by dropping their first token."""
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids) - order + 1
    keys = ids[:n].copy()
    for j in range(1, order):  # append token j of every window as the next base-V digit
        keys *= vocab_size
        keys += ids[j : j + n]
    tables: list[tuple[np.ndarray, np.ndarray]] = [np.unique(keys, return_counts=True)]
    del keys
    for k in range(order - 1, 0, -1):
        suffixes = tables[0][0] % vocab_size**k  # the k-gram after each distinct (k+1)-gram's first token
        tables.insert(0, np.unique(suffixes, return_counts=True))
    return tables


class NGramLevel(nn.Module):
    """The tables of one order k ≥ 2: contexts of k-1 tokens and their continuations."""

    def __init__(self):
        super().__init__()
        self.register_buffer("contexts", torch.zeros(0, dtype=torch.int64))  # sorted context keys (H,)
        self.register_buffer("offsets", torch.zeros(1, dtype=torch.int64))  # continuations of context i: offsets[i]:offsets[i+1]
        self.register_buffer("backoff", torch.zeros(0, dtype=torch.float64))  # γ per context (H,)
        self.register_buffer("next_ids", torch.zeros(0, dtype=torch.int64))  # continuation token (E,)
        self.register_buffer("next_probs", torch.zeros(0, dtype=torch.float64))  # its discounted probability (E,)

    def fill(self, keys: np.ndarray, counts: np.ndarray, discounts: np.ndarray, vocab_size: int) -> None:
        contexts, words = keys // vocab_size, keys % vocab_size  # keys are sorted, so contexts are grouped
        starts = np.flatnonzero(np.r_[True, contexts[1:] != contexts[:-1]])
        totals = np.add.reduceat(counts, starts).astype(np.float64)  # c(h)
        d = discounts[np.minimum(counts, 3) - 1]  # the discount of each continuation
        offsets = np.r_[starts, len(keys)]
        device = self.contexts.device
        self.contexts = torch.from_numpy(contexts[starts]).to(device)
        self.offsets = torch.from_numpy(offsets.astype(np.int64)).to(device)
        self.backoff = torch.from_numpy(np.add.reduceat(d, starts) / totals).to(device)
        self.next_ids = torch.from_numpy(words).to(device)
        self.next_probs = torch.from_numpy((counts - d) / np.repeat(totals, np.diff(offsets))).to(device)

    def interpolate(self, probs: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """P_k from P_{k-1}: `probs` (M, V) for M positions whose contexts have `keys` (M,); -1 = too short."""
        if len(self.contexts) == 0:
            return probs
        row = torch.searchsorted(self.contexts, keys).clamp_(max=len(self.contexts) - 1)
        found = self.contexts[row] == keys  # (M,) positions whose context was seen in training
        seen = found.nonzero().squeeze(1)
        if len(seen) == 0:
            return probs
        probs *= torch.where(found, self.backoff[row], 1.0)[:, None]  # γ(h) · P_{k-1}; unseen contexts pass through
        row = row[seen]
        start, count = self.offsets[row], self.offsets[row + 1] - self.offsets[row]
        first = torch.cumsum(count, 0) - count  # where each context's continuations begin in the flat list
        entry = torch.arange(int(count.sum()), device=keys.device) - first.repeat_interleave(count) \
            + start.repeat_interleave(count)  # index of every (position, continuation) pair's entry
        probs.index_put_((seen.repeat_interleave(count), self.next_ids[entry]), self.next_probs[entry], accumulate=True)
        return probs

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        # table sizes depend on the text the model was fitted on: take the saved shapes
        for name, buf in self._buffers.items():
            saved = state_dict.get(prefix + name)
            if saved is not None and buf is not None and saved.shape != buf.shape:
                self._buffers[name] = torch.empty(saved.shape, dtype=buf.dtype, device=buf.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class NGram(LanguageModel):
    family = "ngram"
    fitted_by_counts = True

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.order, self.vocab_size = cfg.ngram_order, vocab_size
        if self.vocab_size**self.order >= KEY_LIMIT:
            most = max(n for n in range(1, self.order) if self.vocab_size**n < KEY_LIMIT) if self.vocab_size < KEY_LIMIT else 0
            raise LmforgeError(
                f"--model.ngram_order {self.order} with a vocabulary of {self.vocab_size:,} tokens needs keys wider "
                f"than 64 bits; use --model.ngram_order {most} or less"
            )
        # before fitting: the uniform distribution (every level empty)
        self.register_buffer("unigram", torch.full((self.vocab_size,), 1.0 / self.vocab_size, dtype=torch.float64))
        self.register_buffer("discounts", torch.zeros(self.order, 3, dtype=torch.float64))  # (D₁, D₂, D₃₊) per order
        self.levels = nn.ModuleList(NGramLevel() for _ in range(2, self.order + 1))  # levels[k-2]: order k

    @property
    def context_size(self) -> int:
        return self.order - 1

    def fit_counts(self, ids: np.ndarray) -> None:
        if len(ids) < self.order:
            raise LmforgeError(f"the train split has {len(ids)} tokens, fewer than --model.ngram_order {self.order}")
        V = self.vocab_size
        modified = self.cfg.ngram_smoothing == "modified_kn"
        tables = count_ngrams(ids[: len(ids)], self.order, V)  # a slice reads prepared shards into one array
        discounts = np.stack([kn_discounts(counts, modified) for _, counts in tables])
        self.discounts = torch.from_numpy(discounts).to(self.unigram.device)
        # order 1 interpolates with the uniform distribution, so tokens never seen still get mass
        words, counts = tables[0]
        d = discounts[0][np.minimum(counts, 3) - 1]
        unigram = np.full(V, d.sum() / counts.sum() / V)
        unigram[words] += (counts - d) / counts.sum()
        self.unigram = torch.from_numpy(unigram).to(self.unigram.device)
        for level, (keys, counts), dk in zip(self.levels, tables[1:], discounts[1:]):
            level.fill(keys, counts, dk, V)

    def context_keys(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """For each order k ≥ 2, the key of the k-1 tokens ending at every position of ids (B, T); -1 where the window holds fewer."""
        keys = [ids.clone()] if self.order > 1 else []
        for j in range(2, self.order):  # context length j, used by order j + 1: the j-1 before, then this token
            key = torch.full_like(ids, -1)
            key[:, j - 1 :] = keys[-1][:, j - 2 : -1] * self.vocab_size + ids[:, j - 1 :]
            keys.append(key)
        return keys

    def probs(self, ids: torch.Tensor) -> torch.Tensor:
        """Next-token probabilities (B, T, V) in float64: P(· | the up to n-1 tokens ending at each position)."""
        B, T = ids.shape
        keys = [k.reshape(-1) for k in self.context_keys(ids.long())]
        out = torch.empty(B * T, self.vocab_size, dtype=torch.float64, device=ids.device)
        chunk = max(1, CHUNK_VALUES // self.vocab_size)
        for start in range(0, B * T, chunk):
            rows = slice(start, start + chunk)
            p = self.unigram.expand(len(out[rows]), -1).clone()  # (M, V): order 1
            for level, key in zip(self.levels, keys):
                p = level.interpolate(p, key[rows])
            out[rows] = p
        return out.view(B, T, self.vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.probs(ids).log().float()  # log-probabilities are logits whose softmax is the distribution itself

    def num_params(self) -> int:
        """The numbers that define the distribution: every stored probability and backoff weight."""
        return len(self.unigram) + sum(len(level.next_probs) + len(level.backoff) for level in self.levels)

    def describe(self) -> str:
        smoothing = "modified Kneser-Ney" if self.cfg.ngram_smoothing == "modified_kn" else "Kneser-Ney"
        return f"{self.order}-gram, interpolated {smoothing}"
