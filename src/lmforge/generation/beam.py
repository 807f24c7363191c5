"""Beam search: keep the `num_beams` best partial continuations instead of one.

Each step extends every running beam by every token, scores each extension by its
total log-probability, and keeps the best. A beam that produces EOS (or reaches
`max_new_tokens`) is finished and scored with the length penalty:

    score = sum of log-probabilities / (generated tokens, EOS included) ** length_penalty

so a length_penalty above 0 favours longer outputs and below 0 shorter ones
(scores are negative). The rules are those of Hugging Face `generate` with its
defaults (`early_stopping=False`), and the results match it token for token:

- each step looks at the 2 × num_beams best extensions; those among the first
  num_beams that end become finished candidates, and the best num_beams that do
  not end run on;
- at most num_beams finished beams are kept, the best by score;
- the search stops when num_beams beams are finished and the best running beam,
  scored at its current length, is no better than the worst finished one.

The penalties and bans of `DecodeConfig` apply to the log-probabilities (as in
Hugging Face); temperature and the top-k/top-p/min-p filters do not, since beam
search does not sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lmforge.config import DecodeConfig
from lmforge.generation.decode import eval_mode, model_device
from lmforge.generation.processors import Sampler
from lmforge.models.base import LanguageModel


@dataclass
class Beam:
    """One finished beam, best first in `beam_search`'s result."""

    ids: list[int]  # the generated tokens, EOS excluded
    score: float  # sum of log-probabilities / length ** length_penalty
    ended_by_eos: bool
    logprobs: list[float]  # each token's log-probability under the model, before any processor
    top_ids: list[list[int]]  # per token: the model's most likely alternatives (empty lists when not asked for)
    top_logprobs: list[list[float]]


@torch.inference_mode()
def beam_search(model: LanguageModel, prompt: Sequence[int], cfg: DecodeConfig, num_return: int = 1,
                top_logprobs: int = 0) -> list[Beam]:
    """The `num_return` best continuations of `prompt` under beam search with `cfg.num_beams` beams."""
    k, eos, lp = cfg.num_beams, cfg.eos_id, cfg.length_penalty
    if not 1 <= num_return <= k:
        raise ValueError(f"can return 1 to {k} beams, not {num_return}")
    if not prompt:
        raise ValueError("the prompt needs at least one token")
    if cfg.max_new_tokens == 0:
        return [Beam([], 0.0, False, [], [], [])]
    with eval_mode(model):
        device = model_device(model)
        ids = torch.tensor([list(prompt)], dtype=torch.long, device=device)
        logits, state = model.step(ids, model.new_state(1, ids.size(1) + cfg.max_new_tokens))
        sampler = Sampler(cfg, logits.size(-1), ids)
        n_top = top_logprobs
        running = torch.zeros(1, device=device)  # (R,) total log-probability of each running beam
        hist = {"ids": torch.zeros(1, 0, dtype=torch.long, device=device),  # what each candidate generated: (R, t)
                "logprobs": torch.zeros(1, 0, device=device),  # (R, t)
                "top_ids": torch.zeros(1, 0, n_top, dtype=torch.long, device=device),  # (R, t, n_top)
                "top_logprobs": torch.zeros(1, 0, n_top, device=device)}  # (R, t, n_top)
        finished: list[tuple[float, dict, int, bool]] = []  # (score, history, row, ended by EOS)
        for t in range(cfg.max_new_tokens):
            raw = torch.log_softmax(logits.float(), dim=-1)  # (R, V)
            V = raw.size(-1)
            total = running[:, None] + sampler.process(raw)  # (R, V)
            top_scores, flat = total.view(-1).topk(min(2 * k, total.numel()))  # the 2k best extensions
            rows, tokens = flat // V, flat % V
            ends = (tokens == eos) if eos is not None else torch.zeros_like(tokens, dtype=torch.bool)
            if t + 1 == cfg.max_new_tokens:
                ends = torch.ones_like(ends)  # the length limit ends every beam
            top = raw[rows].topk(min(n_top, V), dim=-1)
            new = {"ids": tokens, "logprobs": raw[rows, tokens], "top_ids": top.indices, "top_logprobs": top.values}
            extended = {key: torch.cat([hist[key][rows], new[key][:, None]], dim=1) for key in hist}
            for i in range(min(k, len(flat))):  # only the first k extensions may finish
                if ends[i]:
                    finished.append((float(top_scores[i]) / (t + 1) ** lp, extended, i, bool(tokens[i] == eos)))
            finished = sorted(finished, key=lambda f: f[0], reverse=True)[:k]
            keep = (~ends).nonzero().squeeze(1)[:k]  # the best k extensions that run on
            if keep.numel() == 0:
                break
            running = top_scores[keep]
            hist = {key: h[keep] for key, h in extended.items()}
            if len(finished) == k and float(running[0]) / (t + 1) ** lp <= finished[-1][0]:
                break  # the best running beam cannot beat the worst finished one (at its present length)
            next_rows = rows[keep]
            state = model.reorder_state(state, next_rows)
            sampler.reorder(next_rows)
            sampler.record(tokens[keep])
            logits, state = model.step(tokens[keep][:, None], state)
        return [_to_beam(score, h, i, by_eos) for score, h, i, by_eos in finished[:num_return]]


def _to_beam(score: float, hist: dict[str, torch.Tensor], row: int, ended_by_eos: bool) -> Beam:
    n = hist["ids"].size(1) - ended_by_eos  # EOS is not part of the output
    return Beam(hist["ids"][row, :n].tolist(), score, ended_by_eos,
                *(hist[key][row, :n].tolist() for key in ("logprobs", "top_ids", "top_logprobs")))
