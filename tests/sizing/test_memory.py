"""The training memory estimate: its activation counts against autograd's, its total against measured peak RSS,
and the warning with the setting that would fit."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmforge.config import Config, ModelConfig
from lmforge.models import build_model
from lmforge.models.base import next_token_loss
from lmforge.sizing import memory_of
from lmforge.sizing.memory import activation_bytes, activation_values

HERE = Path(__file__).parent


def saved_values_per_token(cfg: Config, vocab: int, rows: int = 2) -> float:
    """What autograd keeps for backward, per token, in values (4-byte floats), shared storages once, weights not."""
    return saved_bytes(cfg, vocab, rows) / 4 / (rows * cfg.model.block_size)


def saved_bytes(cfg: Config, vocab: int, rows: int, autocast: bool = False) -> int:
    """Bytes autograd keeps for backward (shared storages once, weights not) in float32 or CPU bfloat16 autocast."""
    model = build_model(cfg.model, vocab)
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(t):
        kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    T = cfg.model.block_size
    x, y = torch.randint(0, vocab, (rows, T)), torch.randint(0, vocab, (rows, T))
    half = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), half:
        next_token_loss(model(x), y)
    return sum(n for ptr, n in kept.items() if ptr not in weights)


LAYER_OPTIONS = [{}, {"mlp": "swiglu"}, {"mlp": "relu2"}, {"positions": "rope"}, {"norm": "rmsnorm"},
                 {"qk_norm": True}, {"attention": "explicit"}, {"positions": "rope", "mlp": "swiglu", "norm": "rmsnorm"},
                 {"family": "rnn", "rnn_cell": "lstm"}, {"family": "rnn", "rnn_cell": "gru"},
                 {"family": "rnn", "rnn_cell": "elman"}]


@pytest.mark.parametrize("options", LAYER_OPTIONS, ids=lambda o: "-".join(map(str, o.values())) or "default")
def test_activation_counts_match_what_autograd_saves(options, one_thread):
    """The layers' saved values per token (one layer more minus one layer less) within 12% of the count."""
    def config(layers):
        return Config(model=ModelConfig(n_layer=layers, n_head=4, n_embd=64, block_size=32, **options))

    measured = saved_values_per_token(config(2), 50) - saved_values_per_token(config(1), 50)
    counted = activation_values(config(2), 50)[0] - activation_values(config(1), 50)[0]
    assert counted == pytest.approx(measured, rel=0.12)


@pytest.mark.parametrize("options", [{}, {"norm": "rmsnorm"}, {"mlp": "swiglu"}, {"positions": "rope"}],
                         ids=lambda o: "-".join(map(str, o.values())) or "default")
def test_activation_bytes_under_bfloat16_autocast_match_what_autograd_saves(options, one_thread):
    """A layer's saved bytes per token under 16-bit autocast within 5% of the count. A CPU's bfloat16 autocast stands in
    for CUDA's: both run the matmuls in bfloat16, and the norms on the float32 residual stream in float32. Rows 4
    minus rows 2 leaves out autocast's bfloat16 weight copies (weights, not activations). Counting every value at 2
    bytes was 14% under for LayerNorm and 23% for RMSNorm (seen failing)."""
    def per_token(layers):
        cfg = Config(model=ModelConfig(n_layer=layers, n_head=4, n_embd=64, block_size=32, **options))
        return (saved_bytes(cfg, 50, 4, autocast=True) - saved_bytes(cfg, 50, 2, autocast=True)) / (2 * 32), cfg

    (two, cfg2), (one, cfg1) = per_token(2), per_token(1)
    counted = activation_bytes(cfg2, 50, 2) - activation_bytes(cfg1, 50, 2)
    assert counted == pytest.approx(two - one, rel=0.05)


# activations dominate: 4,096 tokens through two layers of 128; weights dominate: 6 M parameters, 16 tokens a step
SHAPES = {"activations": ({"model.n_layer": 2, "model.n_embd": 128, "model.block_size": 128,
                           "train.batch_size": 32}, 64),
          "weights": ({"model.n_layer": 2, "model.n_embd": 512, "model.n_head": 8, "model.block_size": 8,
                       "train.batch_size": 2}, 64),
          "muon-rope-relu2": ({"model.n_layer": 2, "model.n_embd": 128, "model.block_size": 128, "train.batch_size": 32,
                               "model.positions": "rope", "model.mlp": "relu2", "train.optimizer": "muon",
                               "train.lr": 0.006}, 64)}


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak RSS is reset through Linux's /proc")
@pytest.mark.parametrize("shape", SHAPES)
def test_estimate_is_within_25_percent_of_measured_peak_rss(shape):
    """Issue 17's bar: estimate / measured peak RSS above the baseline in [0.75, 1.25]. Measured 0.95-1.03 on these
    shapes (2-core CPU, glibc, torch 2.x); the band leaves room for another glibc or PyTorch. What it catches: the
    weights shape without its gradients or optimizer state; the ReLU² shape without the MLP's backward
    temporaries and the logits' gradients (each seen failing)."""
    values, vocab = SHAPES[shape]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, str(HERE / "peak_rss.py"), json.dumps(values), str(vocab)],
                           capture_output=True, text=True, env=env, timeout=600)
    assert child.returncode == 0, child.stderr[-2000:]
    measured = json.loads(child.stdout)
    cfg = Config.from_dict({}).updated({"train.device": "cpu", **values})
    estimate = memory_of(cfg, measured["vocab_size"]).total
    assert 0.75 <= estimate / measured["peak_above_baseline"] <= 1.25, (estimate, measured)


def test_auto_precision_on_a_gpu_is_the_trainers(monkeypatch):
    """`--train.dtype auto` is what device.resolve_dtype makes of it: bfloat16 on a CUDA GPU that has it, float32 on one
    that lacks it (the estimate counted 2-byte activations on any CUDA GPU)."""
    cfg = Config.from_dict({}).updated({"train.device": "cuda"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert memory_of(cfg, 64).total == memory_of(cfg.updated({"train.dtype": "float32"}), 64).total
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert memory_of(cfg, 64).total == memory_of(cfg.updated({"train.dtype": "bfloat16"}), 64).total


# by hand: tok_emb 10 × 8 = 80, positions 4 × 8 = 32, one block (norms 8 + 8, qkv 3 · 64, proj 64, fc 4 · 64, mlp.proj
# 4 · 64) = 784, final norm 8, tied head 0: 904 parameters, 768 of them in the block's four hidden matrices
HAND = {"model.family": "transformer", "model.n_layer": 1, "model.n_embd": 8, "model.n_head": 2, "model.block_size": 4,
        "model.bias": False, "model.positions": "learned", "model.norm": "layernorm", "model.mlp": "gelu",
        "model.qk_norm": False, "model.tie_weights": True, "model.dropout": 0.0, "train.device": "cpu",
        "train.dtype": "float32", "train.batch_size": 8, "train.grad_accum": 1, "train.eval_batch_size": 3}


def items(values, processes=1):
    memory = memory_of(Config.from_dict({}).updated({**HAND, **values}), 10, processes)
    return {i.name: i.bytes for i in memory.items}, memory


@pytest.mark.parametrize("values,weights,gradients,state", [
    ({"train.optimizer": "adamw"}, 904, 904, 2 * 904),
    ({"train.optimizer": "muon"}, 904, 904, 768 + 2 * 136),  # one momentum per hidden-matrix value, two moments else
    # rank-2 adapters on qkv (2 · (8 + 24)), attn.proj (2 · 16), mlp.fc and mlp.proj (2 · 40 each): 256 trainable
    ({"train.optimizer": "adamw", "model.lora_rank": 2}, 904 + 256, 256, 2 * 256),
], ids=["adamw", "muon", "lora"])
def test_weights_gradients_and_optimizer_state_by_hand(values, weights, gradients, state):
    """4 bytes a value: every weight, a gradient per trainable one, the optimizer's state. (Two momenta for Muon's
    matrices, or gradients for the frozen weights of a LoRA model, passed the peak-RSS bands.)"""
    got, _ = items(values)
    assert (got["weights"], got["gradients"], got["optimizer state"]) == (4 * weights, 4 * gradients, 4 * state)


def test_processes_split_the_batch_and_ddp_or_fsdp_add_their_copies():
    """DDP over 2: each process holds the whole model, a second copy of the gradients, and half the rows of a batch of
    8 (the activations of a batch of 4 alone). FSDP over 2: weights, gradients and state halved, plus two gathered
    blocks (2 · 784) and the unsharded rest (904 - 784). (Ignoring the sharding or the processes passed.)"""
    single, _ = items({"train.optimizer": "adamw", "train.batch_size": 4})
    ddp, _ = items({"train.optimizer": "adamw", "train.parallel": "ddp"}, processes=2)
    assert ddp["activations"] == single["activations"] and ddp["DDP gradient buckets"] == 4 * 904
    fsdp, _ = items({"train.optimizer": "adamw", "train.parallel": "fsdp"}, processes=2)
    assert (fsdp["weights"], fsdp["gradients"], fsdp["optimizer state"]) == (2 * 904, 2 * 904, 4 * 904)
    assert fsdp["FSDP gathered weights"] == 4 * (2 * 784 + 120) and "DDP gradient buckets" not in fsdp


def test_an_eval_holds_its_logits_beside_the_weights():
    """eval_batch_size 3 × 4 tokens × (3 · V + 5 · C = 70 values) × 4 bytes = 3,360 bytes beside the weights; the peak
    is the larger of training and eval."""
    _, memory = items({"train.optimizer": "adamw"})
    assert memory.eval_bytes == 3360 and memory.eval_total == 4 * 904 + 3360
    assert memory.peak == max(memory.total, memory.eval_total)
    _, big_eval = items({"train.optimizer": "adamw", "train.eval_batch_size": 10_000})
    assert big_eval.peak == big_eval.eval_total > big_eval.total
