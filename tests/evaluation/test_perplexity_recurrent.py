"""Perplexity of recurrent models: the state carries across windows, as in training (evaluation/perplexity.py)."""

import math

import numpy as np
import pytest
import torch

from lmforge.errors import LmforgeError
from lmforge.evaluation import evaluate_ids
from lmforge.evaluation.perplexity import token_nats
from lmforge.tokenizers import CharTokenizer


def small_rnn(cell="lstm", vocab=11, seed=0):
    from lmforge.config import ModelConfig
    from lmforge.models import build_model

    torch.manual_seed(seed)
    return build_model(ModelConfig(family="rnn", rnn_cell=cell, n_layer=2, n_embd=16, block_size=8), vocab).eval()


def one_pass_nats(model, ids):
    """-ln p of every token but the first, from one forward pass over the whole of `ids`."""
    x = torch.from_numpy(np.asarray(ids, dtype=np.int64))[None]
    with torch.inference_mode():
        logits = model(x[:, :-1])
    return torch.nn.functional.cross_entropy(logits[0].double(), x[0, 1:], reduction="none").numpy()


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman"])
def test_rnn_eval_in_one_stream_is_one_forward_pass_over_the_whole_text(cell):
    """An RNN trains with its state carried across windows, so eval carries it too: not a zero state per window."""
    model = small_rnn(cell)
    ids = np.random.default_rng(0).integers(0, 11, 203).astype(np.uint16)  # 202 targets: 25 windows of 8, and 2
    expected = one_pass_nats(model, ids)
    assert np.allclose(token_nats(model, ids, 8, 1, torch.device("cpu")), expected, rtol=1e-5, atol=1e-6)
    result = evaluate_ids(model, CharTokenizer([chr(65 + i) for i in range(11)]), ids, 8, 1, torch.device("cpu"))
    assert result.tokens == 202 and result.streams == 1 and result.stride is None
    assert math.isclose(result.loss, expected.mean(), rel_tol=1e-6)


def test_rnn_eval_in_streams_carries_each_streams_state_and_scores_every_token_once():
    """With batch_size B the text is read as B consecutive streams (as training cuts it); the last takes the rest."""
    model = small_rnn()
    ids = np.random.default_rng(1).integers(0, 11, 207).astype(np.uint16)  # 206 targets: 4 streams of 51, 2 left
    per_stream = 206 // 4
    cuts = [0, per_stream, 2 * per_stream, 3 * per_stream, 206]
    expected = np.concatenate([one_pass_nats(model, ids[a : b + 1]) for a, b in zip(cuts, cuts[1:])])
    nats = token_nats(model, ids, 8, 4, torch.device("cpu"))
    assert nats.shape == (206,)
    assert np.allclose(nats, expected, rtol=1e-5, atol=1e-6)
    # a text too short for B streams of a window each is read as fewer streams: 19 targets, 2 streams of 9 and 10
    short = ids[:20]
    assert np.allclose(token_nats(model, short, 8, 64, torch.device("cpu")),
                       np.concatenate([one_pass_nats(model, short[:10]), one_pass_nats(model, short[9:])]),
                       rtol=1e-5, atol=1e-6)


def test_stride_does_not_apply_to_an_rnn():
    with pytest.raises(LmforgeError, match="--stride does not apply to a rnn model"):
        token_nats(small_rnn(), np.arange(20, dtype=np.uint16) % 11, 8, 1, torch.device("cpu"), stride=4)


def test_rnn_continuation_scores_see_the_whole_prompt():
    """As in generation, an RNN's state holds the whole prompt, however much longer than the training window."""
    from lmforge.evaluation.scoring import continuation_logprobs

    model = small_rnn()
    ids = np.random.default_rng(2).integers(0, 11, 40).tolist()
    prompt, continuation = ids[:30], ids[30:]  # the prompt is almost 4 windows of 8
    scores = continuation_logprobs(model, prompt, continuation, 8, torch.device("cpu"))
    assert np.allclose(scores, -one_pass_nats(model, ids)[-len(continuation) :], rtol=1e-5, atol=1e-6)
