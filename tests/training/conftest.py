"""Fixtures for training tests: a tiny config that trains in about a second."""

from __future__ import annotations

import pytest

from lmforge.config import Config


@pytest.fixture
def tiny_cfg(small_text_file):
    """A factory of `tiny` preset configs on the small text: no samples, no TensorBoard, log every step."""

    def make(**train) -> Config:
        quiet = {"data.path": str(small_text_file), "sample.max_new_tokens": 0, "train.tensorboard": False,
                 "train.log_interval": 1}
        return Config.from_preset("tiny").updated({**quiet, "train": train})

    return make
