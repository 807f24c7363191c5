"""What an eval during training measures, and what it costs (`--train.eval_tokens`, docs/reference.md).

Val loss is over the whole val split, or over `eval_tokens` tokens in `STRETCHES` stretches spread evenly
over it, the same at every eval: cheap enough to evaluate often on a big val split, and a fairer sample than
its first tokens when its text drifts (the built-in corpus's runs over decades of speeches). Bits per byte of
the sample counts the split's mean bytes per token. Train loss is over `eval_train_tokens` tokens of random
train windows, the same at every eval (a fixed seed), so evals are comparable. When training ends, the best
model is scored once on the whole val split, so a run's final figures are not a sample's.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from lmforge.data.batches import random_batch
from lmforge.device import autocast as autocast_for
from lmforge.evaluation.perplexity import EvalResult, evaluate_ids
from lmforge.generation.decode import generate_ids
from lmforge.models.base import LanguageModel, next_token_loss
from lmforge.tokenizers import Tokenizer
from lmforge.tokenizers.base import ScoredBytes
from lmforge.training import distributed

STRETCHES = 8  # a val sample is this many stretches (fewer when each would be shorter than a window)


def val_stretches(n_ids: int, eval_tokens: int, block_size: int) -> list[tuple[int, int]] | None:
    """The (begin, end) id ranges of a val sample of about `eval_tokens` scored tokens; None: the whole split.

    Each stretch scores `end - begin - 1` tokens and holds at least one whole window where the split allows.
    """
    if eval_tokens <= 0 or eval_tokens >= n_ids - 1:
        return None
    count = max(1, min(STRETCHES, eval_tokens // block_size))
    length = eval_tokens // count + 1  # ids: the scored tokens and the first, unscored one
    begins = np.linspace(0, n_ids - length, count).round().astype(int)
    return [(int(b), int(b) + length) for b in begins]


def evaluate_val(model: LanguageModel, tokenizer: Tokenizer, val_ids, stretches: list[tuple[int, int]] | None,
                 val_bytes: ScoredBytes, block_size: int, batch_size: int, device: torch.device,
                 autocast: contextlib.AbstractContextManager | None = None) -> EvalResult:
    """Loss, perplexity and bits per byte of the whole val split, or of the stretches of a sample."""
    if stretches is None:
        return evaluate_ids(model, tokenizer, val_ids, block_size, batch_size, device, autocast, n_bytes=val_bytes)
    per_token = val_bytes.bytes / max(len(val_ids) - 1, 1), val_bytes.unknown / max(len(val_ids) - 1, 1)
    nats = bits = 0.0
    tokens = n_bytes = unknown = 0
    for begin, end in stretches:
        share = ScoredBytes(round(per_token[0] * (end - begin - 1)), round(per_token[1] * (end - begin - 1)))
        part = evaluate_ids(model, tokenizer, np.asarray(val_ids[begin:end]), block_size, batch_size, device,
                            autocast, n_bytes=share)
        nats += part.loss * part.tokens
        bits += part.bits_per_byte * max(part.bytes, 1)
        tokens, n_bytes, unknown = tokens + part.tokens, n_bytes + part.bytes, unknown + part.unknown_bytes
    loss = nats / tokens
    return EvalResult(loss=loss, perplexity=float(np.exp(min(loss, 700.0))), bits_per_byte=bits / max(n_bytes, 1),
                      tokens=tokens, bytes=n_bytes, block_size=block_size, unknown_bytes=unknown)


@torch.inference_mode()
def train_loss(model: LanguageModel, train_ids, n_tokens: int, block_size: int, batch_size: int, seed: int,
               device: torch.device, autocast: contextlib.AbstractContextManager | None = None) -> float:
    """Mean loss over `n_tokens` tokens of random train windows, drawn the same way at every call."""
    gen = torch.Generator().manual_seed(seed)
    n_windows = max(1, n_tokens // block_size)
    nats, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        for start in range(0, n_windows, batch_size):
            x, y = random_batch(train_ids, min(batch_size, n_windows - start), block_size, gen, device)
            with autocast or contextlib.nullcontext():
                nats += next_token_loss(model(x), y).item() * y.numel()
            count += y.numel()
    finally:
        model.train(was_training)
    return nats / count


class Evaluator:
    """A run's evals: the losses at each eval, the best model on the whole val split at the end, and samples.
    Under torchrun every rank computes the same numbers (FSDP needs every rank in each forward)."""

    def __init__(self, cfg, tokenizer: Tokenizer, train_ids: np.ndarray, val_ids: np.ndarray,
                 val_bytes: ScoredBytes, device: torch.device, dtype: torch.dtype):
        self.cfg, self.tokenizer, self.train_ids, self.val_ids, self.val_bytes = cfg, tokenizer, train_ids, val_ids, val_bytes
        self.device, self.autocast = device, autocast_for(device, dtype)
        # the val sample of each eval; None: the whole split
        self.stretches = val_stretches(len(val_ids), cfg.train.eval_tokens, cfg.model.block_size)

    def _val(self, model: LanguageModel, stretches: list[tuple[int, int]] | None) -> dict[str, float]:
        val = evaluate_val(model, self.tokenizer, self.val_ids, stretches, self.val_bytes, self.cfg.model.block_size,
                           self.cfg.train.eval_batch_size, self.device, self.autocast)
        return {"val_loss": val.loss, "val_ppl": val.perplexity, "val_bpb": val.bits_per_byte, "val_tokens": val.tokens}

    def losses(self, model: LanguageModel) -> dict[str, float]:
        """Val loss over the val split (or its sample) and train loss over a fixed set of train windows."""
        t = self.cfg.train
        train = train_loss(model, self.train_ids, t.eval_train_tokens, self.cfg.model.block_size, t.eval_batch_size,
                           t.seed + 1, self.device, self.autocast)
        return {"train_loss": train, **self._val(model, self.stretches)}

    def whole_val(self, model: LanguageModel) -> dict[str, float]:
        """The model on the whole val split: what `Trainer.fit` reports when evals scored a sample of it."""
        return self._val(model, None)

    def sample(self, model: LanguageModel, generator: torch.Generator, max_new_tokens: int | None = None) -> str:
        """The run's sample prompt continued as the `sample` section says."""
        s = self.cfg.sample
        prompt = self.tokenizer.encode(s.prompt) or [0]
        n = s.max_new_tokens if max_new_tokens is None else max_new_tokens
        with distributed.gathered(model):  # FSDP: the root's weights, which decoding uses outside forward
            steps = generate_ids(model, torch.tensor([prompt], device=self.device), n, temperature=s.temperature,
                                 top_k=s.top_k, top_p=s.top_p, greedy=s.temperature == 0, generator=generator)
            out = [int(t) for t in steps]  # a generator: it decodes here, while the weights are gathered
        return self.tokenizer.decode(prompt + out)
