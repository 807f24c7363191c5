"""The training keys added for resume, stability and scale-out: validated, each message naming its flag."""

import pytest

from lmforge.config import Config
from lmforge.errors import LmforgeError


@pytest.mark.parametrize(
    "key, value, flag",
    [("train.schedule", "cosin", "--train.schedule"), ("train.optimizer", "sgd", "--train.optimizer"),
     ("train.grad_accum", 0, "--train.grad_accum"), ("train.grad_accum", 5, "--train.grad_accum"),
     ("train.decay_fraction", 1.5, "--train.decay_fraction"), ("train.muon_lr", 0, "--train.muon_lr"),
     ("train.muon_momentum", 1, "--train.muon_momentum"), ("train.max_bad_steps", 0, "--train.max_bad_steps"),
     ("train.patience", -1, "--train.patience"), ("train.checkpoint_interval", -5, "--train.checkpoint_interval"),
     ("train.keep_checkpoints", 0, "--train.keep_checkpoints"), ("train.compile", "maybe", "--train.compile"),
     ("train.parallel", "zero3", "--train.parallel"), ("train.peak_flops", -1, "--train.peak_flops")],
)
def test_bad_training_values_name_the_flag(key, value, flag):
    with pytest.raises(LmforgeError, match=flag):
        Config().updated({key: value})


def test_muon_and_fsdp_together_are_refused():
    with pytest.raises(LmforgeError, match="--train.optimizer muon.*--train.parallel fsdp"):
        Config().updated({"train.optimizer": "muon", "train.parallel": "fsdp"})


@pytest.mark.parametrize("value, expected", [(True, "true"), (False, "false"), ("AUTO", "auto"), ("true", "true")])
def test_compile_accepts_yaml_booleans(value, expected):
    cfg = Config.from_dict({"train": {"compile": value}})
    assert cfg.train.compile == expected


def test_precision_and_compile_defaults_depend_on_the_device():
    import torch

    from lmforge.training.optim import grad_scaler, should_compile

    assert should_compile("auto", torch.device("cuda")) and not should_compile("auto", torch.device("cpu"))
    assert should_compile("true", torch.device("cpu")) and not should_compile("false", torch.device("cuda"))
    assert grad_scaler(torch.device("cpu"), torch.float16).is_enabled()
    assert not grad_scaler(torch.device("cpu"), torch.bfloat16).is_enabled()
