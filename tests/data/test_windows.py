import numpy as np
import pytest
import torch

from lmforge.data import random_batch
from lmforge.data.windows import check_long_enough
from lmforge.errors import LmforgeError


def test_targets_are_inputs_shifted_by_one():
    ids = np.arange(100, dtype=np.uint16)
    x, y = random_batch(ids, 8, 10, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert x.shape == y.shape == (8, 10) and x.dtype == torch.int64
    assert torch.equal(y, x + 1)  # ids are consecutive numbers, so the next token is the id plus one
    assert int(y.max()) <= 99


def test_too_short_corpus_is_explained():
    with pytest.raises(LmforgeError, match="fewer than the context of 64.*--model.block_size 19"):
        check_long_enough(np.arange(20), 64, "val split")
