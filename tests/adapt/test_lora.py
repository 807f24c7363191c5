"""LoRA: starts as the base model, trains only the adapters, and merges into an equal plain model."""

from __future__ import annotations

import pytest
import torch

from lmforge.adapt.lora import LoRALinear, adapter_state, add_lora, merge_lora
from lmforge.config import ModelConfig
from lmforge.errors import LmforgeError
from lmforge.models import build_model


def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, bias=True), 50).eval()


def test_lora_starts_as_the_base_and_trains_only_adapters():
    net, ids = model(), torch.randint(0, 50, (2, 16))
    before = net(ids).detach()
    names = add_lora(net, rank=4, alpha=8, targets=["qkv", "mlp.proj"])
    assert names == ["blocks.0.attn.qkv", "blocks.0.mlp.proj", "blocks.1.attn.qkv", "blocks.1.mlp.proj"]
    assert torch.equal(net(ids), before)  # B = 0: not a single weight's worth of change yet
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {f"{n}.lora_{m}" for n in names for m in "ab"}
    loss = net(ids).logsumexp(-1).mean()
    loss.backward()
    assert all(p.grad is None for n, p in net.named_parameters() if not p.requires_grad)
    assert net.blocks[0].attn.qkv.lora_b.grad.abs().sum() > 0  # A random, so B learns from the first step


def layer_by_hand():
    """nn.Linear(3, 2) with W = [[1, 0, 0], [0, 1, 0]], b = [0.5, -0.5], wrapped at rank 2, alpha 6 (scale 3), with
    A = [[1, 0, 0], [0, 0, 1]] and B = [[1, 0], [0, 2]]; non-square, so a transposed update cannot fit."""
    base = torch.nn.Linear(3, 2)
    layer = LoRALinear(base, rank=2, alpha=6.0)
    with torch.no_grad():
        base.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0]]))
        base.bias.copy_(torch.tensor([0.5, -0.5]))
        layer.lora_a.copy_(torch.tensor([[1.0, 0, 0], [0, 0, 1]]))
        layer.lora_b.copy_(torch.tensor([[1.0, 0], [0, 2]]))
    return layer


def test_the_update_is_scaled_by_alpha_over_rank_by_hand():
    """x = [1, 2, 3]: W x + b = [1.5, 1.5]; A x = [1, 3]; B A x = [1, 6]; times 3 → y = [4.5, 19.5]. Merged,
    W + 3 B A = [[4, 0, 0], [0, 1, 6]]. (A scale of alpha instead of alpha / rank passed the older tests.)"""
    layer, x = layer_by_hand(), torch.tensor([[1.0, 2.0, 3.0]])
    assert layer(x).tolist() == [[4.5, 19.5]]
    merged = layer.merged()
    assert merged.weight.tolist() == [[4.0, 0.0, 0.0], [0.0, 1.0, 6.0]] and merged.bias.tolist() == [0.5, -0.5]


def test_dropout_acts_on_the_adapters_input_only():
    """In training mode the base path sees x untouched (B = 0: exactly the base), and the adapter sees dropout(x):
    with W = 0, b = 0, A = B = I and scale 1, y is dropout(ones), each value 0 or 1 / (1 - 0.5) = 2. (Dropping the
    dropout, or applying it to the base path too, passed the older tests.)"""
    torch.manual_seed(0)
    base = torch.nn.Linear(64, 64)
    layer = LoRALinear(base, rank=64, alpha=64.0, dropout=0.5).train()
    x = torch.ones(1, 64)
    assert torch.equal(layer(x), base(x))
    with torch.no_grad():
        base.weight.zero_()  # y is then the update alone
        base.bias.zero_()
        layer.lora_a.copy_(torch.eye(64))
        layer.lora_b.copy_(torch.eye(64))
    assert set(layer(x).flatten().tolist()) == {0.0, 2.0}
    assert torch.equal(layer.eval()(x), torch.ones(1, 64))


def test_merge_gives_the_same_function_as_a_plain_model():
    net, ids = model(), torch.randint(0, 50, (2, 16))
    add_lora(net, rank=4, alpha=16)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, LoRALinear):
                m.lora_b.normal_()
    adapted = net(ids).detach()
    assert (adapted - model()(ids)).abs().max() > 1e-2  # the adapters change the output
    state = adapter_state(net)
    assert state and all(".lora_" in k for k in state)
    assert merge_lora(net) == 8  # qkv, attn.proj, mlp.fc, mlp.proj in 2 blocks
    assert not any(isinstance(m, LoRALinear) for m in net.modules())
    assert (net(ids) - adapted).abs().max() < 1e-5
    assert set(net.state_dict()) == set(model().state_dict())  # an ordinary model again
    assert all(p.requires_grad for p in net.parameters())  # and trainable again, every weight


def test_bad_lora_settings_are_refused():
    with pytest.raises(LmforgeError, match="match no linear layer; names end with e.g.*qkv"):
        add_lora(model(), 4, 8, targets=["q_proj"])
    with pytest.raises(LmforgeError, match="--lora-rank >= 1"):
        add_lora(model(), 0, 8)
    for alpha in (float("nan"), float("inf")):  # nan trained to nan weights, exit 0 (classify --mode lora)
        with pytest.raises(LmforgeError, match="a finite --lora-alpha > 0"):
            add_lora(model(), 4, alpha)
    for alpha, dropout in ((0, 0.0), (8, 1.0), (8, -0.1)):
        with pytest.raises(LmforgeError, match="--lora-alpha > 0 and 0 <= --lora-dropout < 1"):
            add_lora(model(), 4, alpha, dropout)
    with pytest.raises(LmforgeError, match="match no linear layer"):  # a target is a whole name part, not a suffix
        add_lora(model(), 4, 8, targets=["roj"])
