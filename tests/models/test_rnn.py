"""Recurrent models: the Elman equation, state carried by `step`, and truncated BPTT."""

import math

import numpy as np
import pytest
import torch

from lmforge.config import ModelConfig
from lmforge.models import build_model, next_token_loss
from lmforge.models.rnn import TruncatedBPTTFeed


def tiny_rnn(cell="lstm", **overrides):
    shape = {"n_layer": 2, "n_embd": 16, "block_size": 12, "vocab_size": 11, **overrides}
    cfg = ModelConfig(family="rnn", rnn_cell=cell, **shape)
    torch.manual_seed(0)
    return build_model(cfg).eval()


def test_elman_layer_is_the_tanh_recurrence():
    model = tiny_rnn("elman", n_layer=1)
    ids = torch.randint(11, (2, 6))
    cell = model.cell
    x = model.tok_emb(ids)
    h = torch.zeros(2, 16)
    hs = []
    for t in range(6):  # h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
        h = torch.tanh(x[:, t] @ cell.weight_ih_l0.T + cell.bias_ih_l0 + h @ cell.weight_hh_l0.T + cell.bias_hh_l0)
        hs.append(h)
    want = torch.stack(hs, 1) @ model.head.weight.T
    assert torch.allclose(model(ids), want, atol=1e-5)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_step_carries_the_hidden_state(cell):
    model = tiny_rnn(cell)
    ids = torch.randint(11, (3, 20))  # longer than block_size: an RNN has no context limit
    full = model(ids)
    logits, state = model.step(ids[:, :7])
    assert torch.allclose(logits, full[:, 6], atol=1e-5)
    for t in range(7, 20):
        logits, state = model.step(ids[:, t : t + 1], state)
        assert torch.allclose(logits, full[:, t], atol=1e-5)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_each_cell_learns_a_batch(cell):
    model = tiny_rnn(cell, dropout=0.1).train()
    assert model.head.weight is model.tok_emb.weight  # tied by default
    x = torch.randint(11, (4, 12), generator=torch.Generator().manual_seed(1))
    y = torch.roll(x, -1, dims=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
    first = None
    for _ in range(60):
        loss = next_token_loss(model(x), y)
        first = first or loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert math.isfinite(loss.item()) and loss.item() < first * 0.5


def test_untied_head():
    model = tiny_rnn("gru", tie_weights=False)
    assert model.head.weight is not model.tok_emb.weight


def test_truncated_bptt_carries_the_state_but_not_the_graph():
    model = tiny_rnn("lstm").train()
    ids = np.arange(2000) % 11
    feed = TruncatedBPTTFeed(ids, batch_size=4, block_size=12, generator=torch.Generator().manual_seed(0),
                             device=torch.device("cpu"))
    loss = feed.loss(model)
    loss.backward()
    h, c = feed.state
    assert h.shape == (2, 4, 16) and h.grad_fn is None and c.grad_fn is None  # values kept, history cut
    # the next window starts from the carried state: its loss is what scan from that state gives
    windows_before = (feed.windows.offset, feed.windows.window)
    carried = tuple(s.clone() for s in feed.state)
    second = feed.loss(model)
    start = windows_before[0] + (windows_before[1] + 1) * 12
    x = torch.from_numpy(feed.windows.streams[:, start : start + 12].astype(np.int64))
    y = torch.from_numpy(feed.windows.streams[:, start + 1 : start + 13].astype(np.int64))
    assert torch.allclose(second, next_token_loss(model.scan(x, carried)[0], y), atol=1e-6) or model.training
    model.eval()
    fresh = next_token_loss(model.scan(x)[0], y)
    with_state = next_token_loss(model.scan(x, carried)[0], y)
    assert not torch.allclose(fresh, with_state)  # the carried state changes the prediction
