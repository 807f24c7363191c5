import pytest
import torch

from lmforge.config import ModelConfig
from lmforge.models import build_model
from lmforge.training.flops import flops_per_token, mfu, table_peak


def test_flops_per_token_counts_matmul_params_and_attention():
    cfg = ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=8)
    model = build_model(cfg, 10)
    matmul_params = model.num_params() - 8 * 16  # the position table is looked up, not multiplied
    assert flops_per_token(model) == 6 * matmul_params + 12 * 2 * 16 * 8


@pytest.mark.parametrize(
    "name, dtype, tf32, peak",
    [("NVIDIA H100 80GB HBM3", torch.bfloat16, True, 989e12), ("NVIDIA H100 PCIe", torch.bfloat16, True, 756e12),
     ("NVIDIA A100-SXM4-40GB", torch.float32, True, 156e12), ("NVIDIA A100-SXM4-40GB", torch.float32, False, None),
     ("NVIDIA L40S", torch.float16, True, 362e12), ("NVIDIA L4", torch.bfloat16, True, 121e12),
     ("NVIDIA H200", torch.bfloat16, True, 989e12), ("NVIDIA A10G", torch.bfloat16, True, None),
     ("Some Future GPU", torch.bfloat16, True, None)],
)
def test_peak_flops_come_from_the_table_by_device_name(name, dtype, tf32, peak):
    assert table_peak(name, dtype, tf32) == peak


def test_mfu_is_achieved_over_peak_and_none_without_a_peak():
    assert mfu(1000.0, 1e9, 4e12, 2) == pytest.approx(0.125)
    assert mfu(1000.0, 1e9, None, 1) is None


def test_an_rnn_has_no_attention_term():
    model = build_model(ModelConfig(family="rnn", rnn_cell="elman", n_layer=2, n_embd=16, block_size=8), 10)
    # per layer: two 16×16 matrices and two biases of 16; the tied 10×16 table is the output head
    assert flops_per_token(model) == 6 * (2 * (2 * 16 * 16 + 2 * 16) + 10 * 16)


@pytest.mark.parametrize("family", ["transformer", "rnn"])
def test_an_untied_token_table_is_looked_up_not_multiplied(family):
    """Tied, the token table is the output head's V×C matrix; untied, the head is that matrix and the table a lookup,
    like the position table: the same FLOPs per token either way."""
    tied, untied = (build_model(ModelConfig(family=family, n_layer=2, n_head=2, n_embd=16, block_size=8,
                                            tie_weights=tie), 10) for tie in (True, False))
    assert untied.num_params() == tied.num_params() + 10 * 16
    assert flops_per_token(untied) == flops_per_token(tied)
