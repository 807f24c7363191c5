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


def test_bad_lora_settings_are_refused():
    with pytest.raises(LmforgeError, match="match no linear layer; names end with e.g.*qkv"):
        add_lora(model(), 4, 8, targets=["q_proj"])
    with pytest.raises(LmforgeError, match="--lora-rank >= 1"):
        add_lora(model(), 0, 8)
    for alpha in (float("nan"), float("inf")):  # nan trained to nan weights, exit 0 (classify --mode lora)
        with pytest.raises(LmforgeError, match="a finite --lora-alpha > 0"):
            add_lora(model(), 4, alpha)
