import math

import pytest

from lmforge.config import TrainConfig
from lmforge.training.schedule import lr_at


def test_warmup_then_cosine_then_floor():
    cfg = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(4, cfg) == pytest.approx(0.5)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0)  # cosine starts at the peak
    assert lr_at(60, cfg) == pytest.approx(0.55)  # halfway: (1 + 0.1) / 2
    assert lr_at(35, cfg) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 4)))
    assert lr_at(110, cfg) == pytest.approx(0.1)
    assert lr_at(500, cfg) == pytest.approx(0.1)


def test_decay_steps_ends_the_cosine_early():
    cfg = TrainConfig(lr=1.0, min_lr=0.0, warmup_steps=0, max_steps=1000, decay_steps=100)
    assert lr_at(50, cfg) == pytest.approx(0.5)
    assert lr_at(100, cfg) == 0.0 and lr_at(900, cfg) == 0.0


def test_no_warmup_starts_at_the_peak():
    cfg = TrainConfig(lr=2e-3, min_lr=2e-4, warmup_steps=0, max_steps=100)
    assert lr_at(0, cfg) == pytest.approx(2e-3)
