"""Recurrent models: the Elman equation, state carried by `step`, and truncated BPTT."""

import math

import numpy as np
import pytest
import torch

from lmforge.config import ModelConfig
from lmforge.errors import LmforgeError
from lmforge.models import build_model, next_token_loss
from lmforge.models.rnn import TruncatedBPTTFeed


def tiny_rnn(cell="lstm", **overrides):
    shape = {"n_layer": 2, "n_embd": 16, "block_size": 12, **overrides}
    cfg = ModelConfig(family="rnn", rnn_cell=cell, **shape)
    torch.manual_seed(0)
    return build_model(cfg, 11).eval()


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
    model = tiny_rnn("lstm")  # eval mode: no dropout, so the same input gives the same logits
    ids = np.arange(2000) % 11
    feed = TruncatedBPTTFeed(ids, batch_size=4, block_size=12, generator=torch.Generator().manual_seed(0))
    x, y = feed.next_batch()
    first = feed.forward(model, x[:2], slice(0, 2))  # two micro-batches of two rows each
    feed.forward(model, x[2:], slice(2, 4))
    next_token_loss(first, y[:2]).backward()
    h, c = feed.states[0]
    assert h.shape == (2, 2, 16) and h.grad_fn is None and c.grad_fn is None  # values kept, history cut
    x2, _ = feed.next_batch()
    assert torch.equal(x2[:, 0], y[:, -1])  # each row continues its own stream
    carried = feed.states[2]
    logits = feed.forward(model, x2[2:], slice(2, 4))
    assert torch.allclose(logits, model(x2[2:], carried, return_state=True)[0], atol=1e-6)  # rows 2-3 continue from their own state
    assert not torch.allclose(logits, model(x2[2:]), atol=1e-3)  # which differs from starting afresh


def test_a_new_pass_starts_from_zeros():
    """Each pass over the data starts at a new random offset: the state carried from the last pass's end does
    not belong to the new windows."""
    model = tiny_rnn("gru")
    feed = TruncatedBPTTFeed(np.arange(80) % 11, batch_size=2, block_size=12, generator=torch.Generator().manual_seed(0))
    windows = 0
    while feed.windows.passes < 2:
        x, _ = feed.next_batch()
        logits = feed.forward(model, x, slice(0, 2))
        windows += 1
    assert windows > 2 and feed.windows.window == 0  # the first pass carried a state; x is the new pass's first
    assert torch.allclose(logits, model(x), atol=1e-6)


def test_initial_weights_start_near_uniform_and_lstms_remembering():
    """Embeddings and an untied head in ±0.1, so every logit starts near zero; an LSTM's forget gate bias (the
    second of PyTorch's four gates) starts at 1 and its other input biases at 0 (Jozefowicz et al., 2015)."""
    model = tiny_rnn("lstm", tie_weights=False)
    for weight in (model.tok_emb.weight, model.head.weight):
        assert weight.abs().max() <= 0.1 and weight.abs().max() > 0.09
    for layer in range(2):
        bias = getattr(model.cell, f"bias_ih_l{layer}").view(4, 16)  # input, forget, cell, output
        assert bias.tolist() == [[0.0] * 16, [1.0] * 16, [0.0] * 16, [0.0] * 16]


def test_truncated_bptt_state_round_trips_for_resume():
    model = tiny_rnn("gru")
    ids = np.arange(3000) % 11
    a = TruncatedBPTTFeed(ids, 4, 12, torch.Generator().manual_seed(0))
    b = TruncatedBPTTFeed(ids, 4, 12, torch.Generator().manual_seed(0))
    for _ in range(3):
        x, _ = a.next_batch()
        a.forward(model, x, slice(0, 4))
    b.load_state_dict([a.state_dict()])
    b.windows.generator.set_state(a.windows.generator.get_state())
    xa, _ = a.next_batch()
    xb, _ = b.next_batch()
    assert torch.equal(xa, xb)
    assert torch.equal(a.forward(model, xa, slice(0, 4)), b.forward(model, xb, slice(0, 4)))


def test_each_process_gets_back_its_own_rows_state_and_any_split_continues():
    """Two "ranks" carry rows 0-1 and 2-3; the checkpoint joins both, so each gets its own rows back, and one
    process (or another split) resuming takes the same rows' states (issue 13, defect 6)."""
    model = tiny_rnn("lstm")
    ids = np.arange(3000) % 11
    ranks = [TruncatedBPTTFeed(ids, 4, 12, torch.Generator().manual_seed(0)) for _ in range(2)]
    for _ in range(3):
        for rank, feed in enumerate(ranks):
            x, _ = feed.next_batch()
            feed.forward(model, x[2 * rank : 2 * rank + 2], slice(2 * rank, 2 * rank + 2))
    saved = [feed.state_dict() for feed in ranks]
    assert [sorted(part["states"]) for part in saved] == [[0], [2]]
    x, _ = ranks[1].next_batch()
    want = ranks[1].forward(model, x[2:], slice(2, 4))
    for rows in (slice(2, 4), slice(0, 4)):  # rank 1 of two, or one process with the whole batch
        resumed = TruncatedBPTTFeed(ids, 4, 12, torch.Generator().manual_seed(0))
        resumed.load_state_dict(saved)
        resumed.windows.generator.set_state(ranks[1].windows.generator.get_state())
        x, _ = resumed.next_batch()
        logits = resumed.forward(model, x[rows], rows)
        assert torch.allclose(logits[-2:], want, atol=1e-6)  # rows 2-3 are the last two either way
    rank0_only = TruncatedBPTTFeed(ids, 4, 12, torch.Generator().manual_seed(0))
    with pytest.raises(LmforgeError, match="hidden state of 2 rows, not --train.batch_size 4"):
        rank0_only.load_state_dict(saved[:1])  # what an older lmforge saved under torchrun


def test_an_rnn_run_resumes_exactly_with_its_carried_state(tmp_path, small_text_file):
    """Crash after step 5, resume from the step-3 checkpoint: the same weights as a run never stopped."""
    from lmforge.config import Config
    from lmforge.training import Trainer

    def cfg():
        return Config.from_preset("tiny").updated({
            "data": {"path": str(small_text_file)}, "model": {"family": "rnn", "rnn_cell": "lstm", "n_embd": 16},
            "sample": {"max_new_tokens": 0},
            "train": {"tensorboard": False, "max_steps": 8, "eval_interval": 5, "checkpoint_interval": 3, "grad_accum": 2}})

    Trainer(cfg(), tmp_path / "ref").fit()
    trainer = Trainer(cfg(), tmp_path / "run")
    original = trainer.train_step

    def crash_after_5():
        if trainer.step == 5:
            raise KeyboardInterrupt  # stops the loop like a kill; the last checkpoint is step 3
        return original()

    trainer.train_step = crash_after_5
    trainer.fit()
    resumed = Trainer(cfg(), tmp_path / "run", resume=True)
    assert resumed.step == 3 and resumed.feed.resumed is not None  # the hidden state came back with the checkpoint
    resumed.fit()
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == (tmp_path / "ref" / "model.safetensors").read_bytes()
