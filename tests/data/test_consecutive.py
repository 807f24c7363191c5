import numpy as np
import pytest
import torch

from lmforge.data.consecutive import ConsecutiveWindows
from lmforge.errors import LmforgeError


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


def test_streams_too_short_for_a_window_name_the_flags():
    with pytest.raises(LmforgeError, match="--train.batch_size 64.*--model.block_size 100"):
        windows(n=5000, batch=64, block=100)


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
