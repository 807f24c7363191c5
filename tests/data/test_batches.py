import numpy as np
import pytest
import torch

from lmforge.config import ModelConfig
from lmforge.data.batches import (IGNORE_INDEX, ConsecutiveWindows, DocumentFeed, check_long_enough, pad_batch,
                                  pieces_of, random_batch, split_documents)
from lmforge.errors import LmforgeError
from lmforge.models import Transformer, next_token_loss


def test_targets_are_inputs_shifted_by_one():
    ids = np.arange(100, dtype=np.uint16)
    x, y = random_batch(ids, 8, 10, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert x.shape == y.shape == (8, 10) and x.dtype == torch.int64
    assert torch.equal(y, x + 1)  # ids are consecutive numbers, so the next token is the id plus one
    assert int(y.max()) <= 99


def test_every_window_can_be_drawn_the_last_included():
    ids = np.arange(12, dtype=np.uint16)  # windows of 10 inputs and 10 targets start at 0 or 1
    x, y = random_batch(ids, 64, 10, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert set(x[:, 0].tolist()) == {0, 1} and int(y.max()) == 11


def test_too_short_corpus_is_explained():
    with pytest.raises(LmforgeError, match="fewer than the context of 64.*--model.block_size 19"):
        check_long_enough(np.arange(20), 64, "val split")
    check_long_enough(np.arange(65), 64, "val split")  # one window and its last target: enough
    with pytest.raises(LmforgeError, match="--model.block_size 63"):
        check_long_enough(np.arange(64), 64, "val split")


def windows(n=1000, batch=4, block=10, seed=0):
    return ConsecutiveWindows(np.arange(n), batch, block, torch.Generator().manual_seed(seed))


def test_each_row_continues_where_it_stopped():
    w = windows()
    x0, y0, new0 = w.next()
    x1, y1, new1 = w.next()
    assert new0 and not new1
    assert x0.shape == y0.shape == (4, 10)
    assert torch.equal(y0, x0 + 1) and torch.equal(y1, x1 + 1)  # targets: the next token
    assert torch.equal(x1[:, 0], x0[:, -1] + 1)  # row b of batch 1 picks up right after row b of batch 0
    assert torch.equal(x0[:, 0] - x0[0, 0], torch.arange(4) * 250)  # row b reads stream b (250 tokens each)


def test_a_new_pass_starts_when_the_streams_run_out_at_a_moved_offset():
    w = windows()
    starts, flags = [], []
    for _ in range(200):
        x, _, new = w.next()
        flags.append(new)
        if new:
            starts.append(int(x[0, 0]))
        assert int(x.max()) < 1000
    assert sum(flags) >= 7  # about 24 windows of 10 fit in a stream of 250 tokens
    assert len(set(starts)) > 1 and all(0 <= s <= 10 for s in starts)


def test_every_pass_reads_every_window_that_fits_after_its_offset():
    w = windows(n=1000, batch=4, block=10)  # streams of 250 tokens
    passes = []
    for _ in range(300):
        x, _, new = w.next()
        if new:
            passes.append([w.offset, 0])
        passes[-1][1] += 1
        assert int(x[0, 0]) == w.offset + (passes[-1][1] - 1) * 10  # windows follow each other from the offset
    for offset, n in passes[:-1]:  # a window needs 11 tokens (10 inputs, the last target) of the 250
        assert n == (250 - 1 - offset) // 10, (offset, n)


def test_streams_too_short_for_a_window_name_the_flags():
    with pytest.raises(LmforgeError, match="--train.batch_size 64.*--model.block_size 100"):
        windows(n=5000, batch=64, block=100)
    with pytest.raises(LmforgeError, match="streams of 10 tokens"):
        windows(n=40, batch=4, block=10)  # 10 tokens hold no window of 10 inputs and their targets
    x, _, _ = windows(n=44, batch=4, block=10).next()  # 11 do: one, from offset 0
    assert x[:, 0].tolist() == [0, 11, 22, 33]


def test_the_position_round_trips_through_state_dict():
    a, b = windows(seed=1), windows(seed=1)
    for _ in range(30):
        a.next()
    b.next()
    b.load_state_dict(a.state_dict())
    b.generator.set_state(a.generator.get_state())
    for _ in range(40):
        xa, _, na = a.next()
        xb, _, nb = b.next()
        assert torch.equal(xa, xb) and na == nb


DOCS = [np.array([1, 2, 3, 4, 5, 6, 7, 0]), np.array([3, 4, 0]), np.array([9, 8, 7, 6, 5, 0])]


def test_padding():
    inputs, targets = pad_batch(DOCS, pad_id=10)
    assert inputs.shape == targets.shape == (3, 7)
    assert inputs[1].tolist() == [3, 4, 10, 10, 10, 10, 10]
    assert targets[1].tolist() == [4, 0] + [IGNORE_INDEX] * 5
    with pytest.raises(LmforgeError, match="at least 2 tokens"):
        pad_batch([np.array([3, 4]), np.array([5])])  # one id: an input with no target


@pytest.mark.parametrize("positions,attention", [("learned", "fused"), ("rope", "fused"), ("learned", "explicit")])
def test_right_padding_needs_no_attention_mask(positions, attention):
    """The trainer gives a transformer only the padded ids, no mask: with padding on the right and causal
    attention, no real position attends to a later pad, so its logits are those of the document alone."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=16, dropout=0.0,
                                    positions=positions, attention=attention), 11).eval()
    with torch.no_grad():
        for pad_id in (0, 10):
            padded = model(pad_batch(DOCS, pad_id)[0])
            for row, doc in enumerate(DOCS):
                alone = model(torch.tensor(doc[:-1])[None])[0]
                assert torch.allclose(padded[row, : len(doc) - 1], alone, atol=1e-5, rtol=0), (row, pad_id)
        # the control: the same pads on the left would be attended to (and shift learned positions)
        short = torch.tensor(DOCS[1][:-1])
        left = model(torch.cat([torch.full((4,), 10), short])[None])[0, 4:]
        assert not torch.allclose(left, model(short[None])[0], atol=1e-3)


def loss_and_grads(model, compute):
    model.zero_grad(set_to_none=True)
    loss = compute()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def test_padded_positions_change_neither_the_loss_nor_any_gradient():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=16, dropout=0.0), 11)

    def one_at_a_time():  # each document alone, unpadded: mean nats over all their targets
        nats = sum(next_token_loss(model(torch.tensor(d[:-1])[None]), torch.tensor(d[1:])[None]) * (len(d) - 1)
                   for d in DOCS)
        return nats / sum(len(d) - 1 for d in DOCS)

    ref_loss, ref_grads = loss_and_grads(model, one_at_a_time)
    for pad_id in (0, 5, 10):  # whatever the padding holds
        x, y = pad_batch(DOCS, pad_id)
        loss, grads = loss_and_grads(model, lambda: next_token_loss(model(x), y))
        assert torch.allclose(loss, ref_loss, atol=1e-6, rtol=0)
        for g, r in zip(grads, ref_grads):
            assert torch.allclose(g, r, atol=1e-6, rtol=1e-5)
    # the control: scoring the padded positions would change both
    x, y = pad_batch(DOCS, 0)
    leaky, leaky_grads = loss_and_grads(model, lambda: next_token_loss(model(x), y.clamp(min=0)))
    assert not torch.allclose(leaky, ref_loss, atol=1e-3)
    assert not all(torch.allclose(g, r, atol=1e-6) for g, r in zip(leaky_grads, ref_grads))


def test_documents_are_found_by_eos_across_scan_blocks():
    ids = np.concatenate(DOCS + [np.array([4, 4])])  # a last document without its EOS
    docs = list(split_documents(ids, eos_id=0, block=4))
    assert [d.tolist() for d in docs] == [d.tolist() for d in DOCS] + [[4, 4]]
    assert [d.tolist() for d in split_documents(np.array([5, 0, 7]), eos_id=0)] == [[5, 0], [7]]


def test_document_feed_rows_are_documents_cut_into_block_size_plus_one_ids():
    ids = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 3, 0, 6], dtype=np.uint16)  # 10 ids, 2, then 1 without EOS
    feed = DocumentFeed(ids, 0, batch_size=8, block_size=4, generator=torch.Generator().manual_seed(0))
    assert [r.tolist() for r in feed.rows] == [[1, 2, 3, 4, 5], [5, 6, 7, 8, 9], [9, 0], [3, 0]]  # [6]: no target
    x, y = feed.next_batch()
    assert x.shape == y.shape == (8, 4)


def test_long_documents_become_rows_that_score_every_target_once():
    doc = np.arange(1, 12)
    rows = list(pieces_of(doc, max_len=4))
    assert [r.tolist() for r in rows] == [[1, 2, 3, 4, 5], [5, 6, 7, 8, 9], [9, 10, 11]]
    targets = [t for r in rows for t in r[1:].tolist()]
    assert targets == doc[1:].tolist()


