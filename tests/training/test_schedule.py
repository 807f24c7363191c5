import math

import pytest

from lmforge.config import TrainConfig
from lmforge.training.optim import lr_at


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


@pytest.mark.parametrize(
    "schedule, expected",
    [
        # warmup 0..9 is the same for all; then each shape at steps 10, 35, 60, 100, 110, 200
        ("constant", {10: 1.0, 35: 1.0, 60: 1.0, 100: 1.0, 110: 1.0, 200: 1.0}),
        ("cosine", {10: 1.0, 35: 0.1 + 0.45 * (1 + math.cos(math.pi / 4)), 60: 0.55, 100: 0.1 + 0.45 * (1 + math.cos(0.9 * math.pi)), 110: 0.1, 200: 0.1}),
        ("linear", {10: 1.0, 35: 0.775, 60: 0.55, 100: 0.19, 110: 0.1, 200: 0.1}),
        # wsd with decay_fraction 0.2 of 110 steps: stable to step 88, then linear to min_lr at 110
        ("wsd", {10: 1.0, 35: 1.0, 60: 1.0, 88: 1.0, 99: 0.55, 110: 0.1, 200: 0.1}),
    ],
)
def test_every_schedule_at_known_steps(schedule, expected):
    cfg = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110, schedule=schedule, decay_fraction=0.2)
    assert [lr_at(s, cfg) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])  # warmup
    for step, lr in expected.items():
        assert lr_at(step, cfg) == pytest.approx(lr), (schedule, step)


def test_wsd_decays_to_decay_steps_then_holds():
    cfg = TrainConfig(lr=1.0, min_lr=0.0, warmup_steps=0, max_steps=1000, decay_steps=100, schedule="wsd",
                      decay_fraction=0.5)
    assert [lr_at(s, cfg) for s in (0, 49, 50, 75, 100, 500)] == pytest.approx([1, 1, 1, 0.5, 0, 0])


def test_lr_never_leaves_its_range():
    for schedule in ("constant", "cosine", "linear", "wsd"):
        cfg = TrainConfig(lr=3e-3, min_lr=3e-4, warmup_steps=7, max_steps=50, schedule=schedule)
        assert all(3e-4 - 1e-12 <= lr_at(s, cfg) <= 3e-3 + 1e-12 for s in range(7, 80)), schedule


def test_wsd_never_decays_during_warmup():
    """decay_fraction 0.8 of 20 steps would start the decay at step 4, inside the 10 warmup steps: it starts at 10."""
    cfg = TrainConfig(lr=1.0, min_lr=0.0, warmup_steps=10, max_steps=20, schedule="wsd", decay_fraction=0.8)
    assert [lr_at(s, cfg) for s in (9, 10, 15, 19, 20)] == pytest.approx([1.0, 1.0, 0.5, 0.1, 0.0])


@pytest.mark.parametrize("schedule", ["cosine", "linear", "wsd"])
def test_a_decay_that_ends_with_the_warmup_leaves_min_lr_after_it(schedule):
    cfg = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=30, decay_steps=10, schedule=schedule)
    assert [lr_at(s, cfg) for s in (9, 10, 29)] == pytest.approx([1.0, 0.1, 0.1])
