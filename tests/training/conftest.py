"""Fixtures for training tests: a tiny config that trains in about a second."""

from __future__ import annotations

import pytest

from lmforge.config import Config


@pytest.fixture
def tiny_cfg(small_text_file):
    """A factory of `tiny` preset configs on the small text: no samples, no TensorBoard, log every step."""

    def make(**train) -> Config:
        cfg = Config.from_preset("tiny")
        cfg.data.path = str(small_text_file)
        cfg.sample.max_new_tokens = 0
        cfg.train.tensorboard = False
        cfg.train.log_interval = 1
        for key, value in train.items():
            setattr(cfg.train, key, value)
        return cfg.validate()

    return make
