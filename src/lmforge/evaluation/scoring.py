"""How likely a model finds a continuation of a prompt: the log-likelihood that
multiple-choice probes rank by and that the decoding study averages.

Each continuation token is scored at temperature 1 with no filtering: the
model's own distribution, not the one a decoding strategy sampled from. With
`stride=1` (the default) every token sees the last `block_size` tokens, exactly
what generation fed the model; a larger stride scores long continuations in
fewer windows, each token with at least `block_size - stride + 1` of context.
A recurrent model reads prompt and continuation as one stream from a zero state,
as generation does, so every token sees the whole prompt; `stride` does not apply.
"""

from __future__ import annotations

import numpy as np
import torch

from lmforge.errors import LmforgeError
from lmforge.evaluation.perplexity import token_nats
from lmforge.models.base import LanguageModel
from lmforge.tokenizers.base import Tokenizer


def continuation_logprobs(model: LanguageModel, prompt_ids: list[int], continuation_ids: list[int], block_size: int,
                          device: torch.device, batch_size: int = 64, stride: int = 1) -> np.ndarray:
    """log p(token | the tokens before it, up to `block_size` of them) for each continuation token."""
    if not prompt_ids:
        raise LmforgeError("the prompt is empty; give at least one character of prompt")
    if not continuation_ids:
        return np.zeros(0)
    full, recurrent = list(prompt_ids) + list(continuation_ids), model.recurrent
    # a recurrent model reads it all as one stream, as in generation; else keep enough context for the first
    # continuation token, no more
    ids = np.asarray(full if recurrent else full[max(0, len(prompt_ids) - block_size) :], dtype=np.int64)
    nats = token_nats(model, ids, block_size, 1 if recurrent else batch_size, device, stride=None if recurrent else stride)
    return -nats[-len(continuation_ids) :]


def split_at_prompt(tokenizer: Tokenizer, prompt: str, continuation: str) -> tuple[list[int], list[int]]:
    """`prompt + continuation` encoded as one text, split into (context ids, scored ids) where the prompt ends.

    Encoding the two apart and joining the ids gives a sequence the tokenizer never makes: BPE
    writes "June 30, 1861" with the token " 1861", not " 18" then "61", so scoring the joined ids
    asks the model about tokens it never saw in training. As the common evaluation harnesses do
    (lm-evaluation-harness), encode the whole text once and score the tokens past the prompt.

    The boundary: context is the leading tokens whose bytes lie wholly inside the prompt (as the
    prompt's own encoding spells it, so a word tokenizer's unknown token compares alike); scoring
    starts at the first token that is not. When the prompt ends inside a token (" 1861" over
    "…, 18" + "61"), that token is scored whole: its log-likelihood also pays for the prompt's
    last bytes, the price of scoring tokens the model knows. A prompt that ends in whitespace
    gets the same treatment (BPE and word tokens carry their leading space), which is what
    lm-evaluation-harness does by moving the whitespace to the continuation.
    """
    prompt_ids = tokenizer.encode(prompt)
    whole = tokenizer.encode(prompt + continuation)
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
