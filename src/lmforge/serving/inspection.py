"""What the playground shows about a model, computed with lmforge's own code: no second implementation.

- `next_token_distribution`: the model's next-token probabilities at one position, and
  the distribution actually sampled from after `Sampler` (generation/processors.py)
  has applied the penalties, temperature, top-k, top-p and min-p of a request.
- `surprisal`: each token's -log2 p, and the text's bits per byte from
  `evaluate_text` (evaluation/perplexity.py), the function `lmforge eval` runs, with
  the same windows and the same autocast, so the page and `eval` agree.
- `attention_weights`: a transformer's attention of one layer and head.
  `record_attention` swaps each block's `attn.attend` for explicit attention that also
  keeps softmax(q kᵀ/√d) (the weights are explicit attention applied to an identity
  matrix of values), and puts the original back afterwards; models/ is not edited.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import torch

from lmforge.config import DecodeConfig
from lmforge.errors import LmforgeError
from lmforge.generation.processors import Sampler
from lmforge.models.layers import explicit_attention

if TYPE_CHECKING:
    from lmforge.run import Run

_swap_lock = threading.Lock()  # one recording at a time: the swap is of shared modules


def token_texts(run: Run, ids: list[int]) -> list[str]:
    """Each token's own text (a byte-level BPE token that is half a character shows as U+FFFD)."""
    return [run.tokenizer.decode([i]) for i in ids]


def window(run: Run, ids: list[int]) -> list[int]:
    """The last context's worth of `ids`: what the model reads to predict the next token."""
    size = run.model.context_size
    return ids[-size:] if size else ids


@torch.inference_mode()
def next_logits(run: Run, ids: list[int]) -> torch.Tensor:
    """The model's next-token logits (1, V) after `ids`, in float32."""
    x = torch.tensor([window(run, ids)], dtype=torch.long, device=run.device)
    return run.model(x)[:, -1].float()


def next_token_distribution(run: Run, prompt: str, completion: str, cfg: DecodeConfig, top: int) -> dict[str, Any]:
    """The next token after `prompt` + `completion` (the text generated so far): the `top` most likely tokens with
    their probability under the model (`before`) and in the distribution sampled from (`after`).

    The penalties count the completion as output and the prompt as context, as `Sampler` does while decoding;
    a temperature of 0 (greedy) puts all the mass on the argmax of the penalized logits.
    """
    prompt_ids, out_ids = run.tokenizer.encode(prompt), run.tokenizer.encode(completion) if completion else []
    if not prompt_ids:
        raise LmforgeError("'prompt' is empty; send at least one character")
    logits = next_logits(run, prompt_ids + out_ids)  # (1, V)
    sampler = Sampler(cfg, logits.size(-1), torch.tensor([prompt_ids], device=logits.device))
    for token in out_ids:
        sampler.record(torch.tensor([token], device=logits.device))
    processed = sampler.process(logits)
    if cfg.is_greedy:
        after = torch.zeros_like(processed).scatter_(-1, processed.argmax(-1, keepdim=True), 1.0)
    else:
        after = sampler.warp(processed).softmax(-1)
    before = logits.softmax(-1)
    top = min(top, before.size(-1))
    probs, ids = before[0].topk(top)
    texts = token_texts(run, ids.tolist())
    return {"tokens": [{"id": int(i), "text": t, "before": float(p), "after": float(after[0, i])}
                       for i, t, p in zip(ids, texts, probs)],
            "kept": int((after[0] > 0).sum()), "vocab_size": int(before.size(-1)),
            "entropy_bits": {"before": entropy_bits(before[0]), "after": entropy_bits(after[0])}}


def entropy_bits(p: torch.Tensor) -> float:
    nz = p[p > 0]
    return float(-(nz * nz.log2()).sum())


def surprisal(run: Run, text: str, batch_size: int = 64) -> dict[str, Any]:
    """Every token of `text` with its surprisal in bits (None for the first, which nothing predicts), its bits per
    byte, and the whole result of `evaluate_text` (loss, perplexity, tokens and bytes scored) as `eval`."""
    from lmforge.device import autocast, resolve_dtype
    from lmforge.evaluation.perplexity import evaluate_text, token_nats

    block = run.config.model.block_size
    amp = autocast(run.device, resolve_dtype(run.config.train.dtype, run.device))
    ids = run.tokenizer.encode_array(text)
    if len(ids) < 2:
        raise LmforgeError("the text is one token or less; send at least two tokens to score (one predicts the next)")
    result = evaluate_text(run.model, run.tokenizer, text, block, batch_size, run.device, amp)
    nats = token_nats(run.model, ids, block, batch_size, run.device, amp)
    bits = [None] + [float(n) / math.log(2) for n in nats]
    texts = token_texts(run, ids.tolist())
    return {"tokens": [{"id": int(i), "text": t, "bits": b} for i, t, b in zip(ids, texts, bits)],
            "bits_per_byte": result.bits_per_byte, "eval": asdict(result)}


def attention_shape(run: Run) -> dict[str, int] | None:
    """{"layers", "heads"} of a transformer, None for a model without attention."""
    blocks = getattr(run.model, "blocks", None)
    if run.model.family != "transformer" or blocks is None:
        return None
    return {"layers": len(blocks), "heads": blocks[0].attn.n_head}


@contextlib.contextmanager
def record_attention(model: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Within the block, forward passes made by this thread keep each layer's attention weights (B, nh, T, S) in
    the yielded list, in layer order. Other threads (a completion decoding meanwhile) run the original attention."""
    owner = threading.get_ident()
    kept: list[torch.Tensor] = []
    with _swap_lock:
        attns = [block.attn for block in model.blocks]
        originals = [attn.attend for attn in attns]

        def recorder(original):
            def attend(q, k, v, dropout_p=0.0, mask=None):
                if threading.get_ident() != owner:
                    return original(q, k, v, dropout_p=dropout_p, mask=mask)
                S = k.size(-2)
                eye = torch.eye(S, dtype=q.dtype, device=q.device).expand(*k.shape[:-1], S)  # (B, nh, S, S)
                weights = explicit_attention(q, k, eye, dropout_p, mask)  # (B, nh, T, S): softmax · I
                kept.append(weights.detach())
                return weights @ v  # (B, nh, T, hs)
            return attend

        for attn, original in zip(attns, originals):
            attn.attend = recorder(original)
        try:
            yield kept
        finally:
            for attn, original in zip(attns, originals):
                attn.attend = original


@torch.inference_mode()
def attention_weights(run: Run, text: str, layer: int, head: int, position: int | None) -> dict[str, Any]:
    """Attention of layer `layer`, head `head` over the context window that ends at token `position` (default: the
    last): `weights[i][j]` is how much token start+i attends to token start+j (0 for j > i)."""
    shape = attention_shape(run)
    if shape is None:
        raise LmforgeError(f"a {run.model.family} model has no attention; pick a transformer run")
    if not 0 <= layer < shape["layers"]:
        raise LmforgeError(f"'layer' must be between 0 and {shape['layers'] - 1}, not {layer}")
    if not 0 <= head < shape["heads"]:
        raise LmforgeError(f"'head' must be between 0 and {shape['heads'] - 1}, not {head}")
    ids = run.tokenizer.encode(text)
    if not ids:
        raise LmforgeError("the text is empty; send at least one character")
    end = len(ids) - 1 if position is None else position
    if not 0 <= end < len(ids):
        raise LmforgeError(f"'position' must be between 0 and {len(ids) - 1} (the text's tokens), not {position}")
    start = max(0, end + 1 - run.model.context_size)
    x = torch.tensor([ids[start : end + 1]], dtype=torch.long, device=run.device)
    with record_attention(run.model) as kept:
        run.model(x)
    weights = kept[layer][0, head].float()  # (T, T)
    return {"layer": layer, "head": head, "start": start, "position": end,
            "tokens": token_texts(run, ids[start : end + 1]), "weights": weights.cpu().tolist()}
