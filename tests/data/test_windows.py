import numpy as np
import pytest
import torch

from lmforge.data import eval_batches, random_batch, split_ids
from lmforge.data.windows import check_long_enough
from lmforge.errors import LmforgeError


def test_split_keeps_the_last_tenth_for_val():
    train, val = split_ids(np.arange(1000), 0.1)
    assert len(train) == 900 and val[0] == 900 and val[-1] == 999


def test_targets_are_inputs_shifted_by_one():
    ids = np.arange(100, dtype=np.uint16)
    x, y = random_batch(ids, 8, 10, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert x.shape == y.shape == (8, 10) and x.dtype == torch.int64
    assert torch.equal(y, x + 1)  # ids are consecutive numbers, so the next token is the id plus one
    assert int(y.max()) <= 99


@pytest.mark.parametrize("n, block", [(101, 10), (105, 10), (11, 10), (57, 4)])
def test_eval_batches_score_every_token_but_the_first_once(n, block):
    ids = np.arange(n)
    targets = torch.cat([y.flatten() for _, y in eval_batches(ids, block, 3, torch.device("cpu"))])
    assert targets.tolist() == list(range(1, n))
    for x, y in eval_batches(ids, block, 3, torch.device("cpu")):
        assert torch.equal(y, x + 1)


def test_too_short_corpus_is_explained():
    with pytest.raises(LmforgeError, match="fewer than the context of 64.*--model.block_size 19"):
        check_long_enough(np.arange(20), 64, "val split")
