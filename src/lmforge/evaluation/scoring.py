"""How likely a model finds a continuation of a prompt, scored at temperature 1 with no filtering: the model's own
distribution, which multiple-choice probes rank by and the decoding study averages (docs/07-evaluation.md)."""

from __future__ import annotations

import numpy as np
import torch

from lmforge.errors import LmforgeError
from lmforge.evaluation.perplexity import token_nats
from lmforge.models.base import LanguageModel
from lmforge.tokenizers.base import Tokenizer


def continuation_logprobs(model: LanguageModel, prompt_ids: list[int], continuation_ids: list[int], block_size: int,
                          device: torch.device, batch_size: int = 64, stride: int = 1) -> np.ndarray:
    """log p(token | the tokens before it, up to `block_size` of them) for each continuation token. `stride=1`: each
    sees exactly what generation fed the model; a recurrent model reads it all as one stream from a zero state."""
    if not prompt_ids:
        raise LmforgeError("the prompt is empty; give at least one character of prompt")
    if not continuation_ids:
        return np.zeros(0)
    full, recurrent = list(prompt_ids) + list(continuation_ids), model.recurrent
    # a window model needs enough context for the first continuation token, no more
    ids = np.asarray(full if recurrent else full[max(0, len(prompt_ids) - block_size) :], dtype=np.int64)
    nats = token_nats(model, ids, block_size, 1 if recurrent else batch_size, device, stride=None if recurrent else stride)
    return -nats[-len(continuation_ids) :]


def split_at_prompt(tokenizer: Tokenizer, prompt: str, continuation: str) -> tuple[list[int], list[int]]:
    """`prompt + continuation` encoded as one text, split into (context ids, scored ids) where the prompt ends:
    joining the ids of the two encoded apart gives tokens the tokenizer never makes (docs/07-evaluation.md). The
    context is the leading tokens whose bytes lie wholly inside the prompt; a token across its end is scored whole."""
    prompt_ids = tokenizer.encode(prompt)
    whole = tokenizer.encode(prompt + continuation)
    # as the prompt's own ids spell it, so that a word tokenizer's unknown token compares alike
    prompt_bytes = b"".join(tokenizer.token_bytes(i) for i in prompt_ids)
    cut, end = 0, 0  # tokens of `whole` inside the prompt, and the bytes they cover
    while cut < len(whole):
        piece = tokenizer.token_bytes(whole[cut])
        if not prompt_bytes.startswith(piece, end):  # runs past the prompt's end, or spells other bytes
            break
        cut, end = cut + 1, end + len(piece)
    if cut == 0 and prompt:
        raise LmforgeError(f"the prompt {prompt!r} ends inside the first token of {prompt + continuation!r}, so "
                           "nothing is left to score it from; give a longer prompt")
    return whole[:cut], whole[cut:]
