"""FLOPs per token, and what one eval costs.

Training FLOPs per token come from `training/flops.py` (the count MFU uses: 6 per
matmul parameter, plus attention's 12 · n_layer · n_embd · T). A forward pass is a
third of that: 2 per matmul parameter and 4 · n_layer · n_embd · T, since backward
costs twice the forward (a gradient for the inputs and one for the weights).

An eval is forward passes only: the val tokens it scores (all of the val split, or
the `train.eval_tokens` sample) plus the `train.eval_train_tokens` of train windows
whose loss it reports. Its time can be estimated only from a measured speed: a run
directory's metrics.jsonl holds training tokens per second, and forward passes
go about three times as fast per token (the same FLOPs ratio), so one eval takes
about (eval tokens × forward FLOPs) / (training tokens/s × training FLOPs per token).
That ignores that eval batches are larger (often faster per token) and that
training pays for the optimizer step (a little slower), so it is a rough figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmforge.config import Config
from lmforge.models.base import LanguageModel
from lmforge.training.evals import val_stretches
from lmforge.training.flops import flops_per_token


@dataclass
class Flops:
    forward: float  # per token
    training: float  # per token: forward and backward


def model_flops(model: LanguageModel) -> Flops | None:
    """None for a count-based model: it looks tokens up, it does not multiply matrices."""
    if model.fitted_by_counts:
        return None
    training = flops_per_token(model)
    return Flops(training / 3, training)


@dataclass
class EvalCost:
    val_tokens: int | None  # val tokens each eval scores; None: the whole val split, whose size is not known yet
    whole_split: bool  # True: every eval scores the whole val split
    train_tokens: int  # train tokens each eval scores (the train loss it reports)
    evals: int  # evals in a run of max_steps
    forward_flops: float | None  # of one eval
    seconds: float | None  # of one eval, from a measured training speed; None without one

    @property
    def tokens(self) -> int | None:
        return None if self.val_tokens is None else self.val_tokens + self.train_tokens


def eval_cost(cfg: Config, flops: Flops | None, val_split: int | None, train_tok_s: float | None) -> EvalCost:
    """What one eval scores and costs. `val_split`: the val split's tokens when known; `train_tok_s`: a measured
    training speed (tokens per second) of this model, when there is one."""
    t = cfg.train
    if val_split is None:
        val = t.eval_tokens or None
        whole = not t.eval_tokens
    else:
        stretches = val_stretches(val_split, t.eval_tokens, cfg.model.block_size)
        whole = stretches is None
        val = val_split - 1 if whole else sum(end - begin - 1 for begin, end in stretches)
    evals = -(-t.max_steps // t.eval_interval)
    if cfg.model.family == "ngram":  # counted, then evaluated once
        evals = 1
    tokens = None if val is None else val + t.eval_train_tokens
    fwd = None if flops is None or tokens is None else tokens * flops.forward
    seconds = None
    if fwd is not None and train_tok_s:
        seconds = fwd / (train_tok_s * flops.training)
    return EvalCost(val, whole, t.eval_train_tokens, evals, fwd, seconds)
