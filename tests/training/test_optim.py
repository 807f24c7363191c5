import math

import pytest
import torch
from torch import nn

from lmforge.config import ModelConfig, TrainConfig
from lmforge.errors import LmforgeError
from lmforge.models import build_model
from lmforge.models.base import LanguageModel
from lmforge.training.muon import Muon, orthogonalize
from lmforge.training.optim import build_optimizers, decay_groups, grad_scaler


def test_only_hidden_matrices_are_decayed():
    model = build_model(ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, bias=True), 10)
    decay, no_decay = decay_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert decayed == {f"blocks.{i}.{m}.weight" for i in range(2) for m in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert "tok_emb.weight" in {names[id(p)] for p in no_decay["params"]}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_hugging_face_gpt2_matrices_are_decayed_as_ours_are():
    """The GPU and CPU benchmarks train transformers' GPT-2 with our optimizers: its `Conv1D` are linear layers."""
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=16, n_positions=8, vocab_size=10)
    model = transformers.GPT2LMHeadModel(config)
    decay, _ = decay_groups(model, 0.1)
    assert _names(model, decay["params"]) == {f"transformer.h.{i}.{m}.weight" for i in range(2)
                                              for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")}


def _names(model, params):
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)] for p in params}


RNN_MATRICES = {f"cell.weight_{kind}_l{i}" for i in range(2) for kind in ("ih", "hh")}


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("tie", [True, False])
def test_rnn_matrices_are_decayed_and_the_head_is_not(cell, tie):
    model = build_model(ModelConfig(family="rnn", rnn_cell=cell, n_layer=2, n_embd=8, block_size=8, tie_weights=tie),
                        10)
    decay, no_decay = decay_groups(model, 0.1)
    assert _names(model, decay["params"]) == RNN_MATRICES
    rest = {"tok_emb.weight"} | {f"cell.bias_{kind}_l{i}" for i in range(2) for kind in ("ih", "hh")}
    assert _names(model, no_decay["params"]) == (rest if tie else rest | {"head.weight"})


def test_an_untied_head_stays_with_adamw_undecayed():
    import torch

    from lmforge.config import TrainConfig
    from lmforge.training.optim import build_optimizers

    model = build_model(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, tie_weights=False), 10)
    muon, adam = build_optimizers(model, TrainConfig(optimizer="muon"), torch.device("cpu"))
    assert "head.weight" not in _names(model, (p for g in muon.param_groups for p in g["params"]))
    (adam_group,) = adam.param_groups  # one group, not decayed: the head, embeddings and norm gains
    assert {"head.weight", "tok_emb.weight"} <= _names(model, adam_group["params"]) and adam_group["weight_decay"] == 0
    decay, _ = decay_groups(model, 0.1)
    assert "head.weight" not in _names(model, decay["params"])


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_muon_takes_the_rnn_matrices(cell):
    import torch

    from lmforge.config import TrainConfig
    from lmforge.training.optim import build_optimizers

    model = build_model(ModelConfig(family="rnn", rnn_cell=cell, n_layer=2, n_embd=8, block_size=8), 10)
    muon, adam = build_optimizers(model, TrainConfig(optimizer="muon"), torch.device("cpu"))
    assert _names(model, (p for g in muon.param_groups for p in g["params"])) == RNN_MATRICES
    assert not RNN_MATRICES & _names(model, (p for g in adam.param_groups for p in g["params"]))


class EmbeddingOnly(LanguageModel):
    """A bigram table: an embedding read back through its tied head, no hidden matrix at all."""

    family = "bigram"

    def __init__(self):
        super().__init__()
        self.tok_emb = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.tok_emb.weight

    def output_head(self):
        return self.head


def test_an_empty_optimizer_group_is_an_error():
    import torch

    from lmforge.config import TrainConfig
    from lmforge.training.optim import build_optimizers

    cpu = torch.device("cpu")
    with pytest.raises(LmforgeError, match="use --train.optimizer adamw"):
        build_optimizers(EmbeddingOnly(), TrainConfig(optimizer="muon"), cpu)
    with pytest.raises(LmforgeError, match="use --train.weight_decay 0"):
        build_optimizers(EmbeddingOnly(), TrainConfig(weight_decay=0.1), cpu)
    (adam,) = build_optimizers(EmbeddingOnly(), TrainConfig(weight_decay=0.0), cpu)
    assert [len(g["params"]) for g in adam.param_groups] == [1]


def test_orthogonalize_flattens_the_singular_values():
    import torch

    from lmforge.training.muon import orthogonalize

    torch.manual_seed(0)
    for rows, cols in ((32, 8), (8, 32), (16, 16)):
        k = min(rows, cols)
        u, _ = torch.linalg.qr(torch.randn(rows, k))
        v, _ = torch.linalg.qr(torch.randn(cols, k))
        g = u @ torch.diag(torch.logspace(-1.5, 0.5, k)) @ v.T  # singular values spread 100×
        s = torch.linalg.svdvals(orthogonalize(g))
        assert s.min() > 0.5 and s.max() < 1.3, (rows, cols, s)  # the quintic lands in about [0.7, 1.2]

def test_orthogonalize_treats_a_stack_as_separate_matrices():
    """Muon orthogonalizes same-shaped matrices in one batched call: each must come out as if alone."""
    import torch

    from lmforge.training.muon import orthogonalize

    torch.manual_seed(0)
    for shape in ((3, 24, 8), (3, 8, 24)):
        stack = torch.randn(shape)
        stack[1] *= 100.0  # a matrix at another scale: the normalization must be per matrix, not per stack
        alone = torch.stack([orthogonalize(g) for g in stack])
        torch.testing.assert_close(orthogonalize(stack), alone, rtol=1e-4, atol=1e-5)


def test_muon_takes_the_hidden_matrices_and_adamw_the_rest():
    import torch

    from lmforge.config import TrainConfig
    from lmforge.training.muon import Muon
    from lmforge.training.optim import build_optimizers, set_lr

    model = build_model(ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, bias=True), 10)
    muon, adam = build_optimizers(model, TrainConfig(optimizer="muon", lr=1e-3, muon_lr=0.02), torch.device("cpu"))
    assert isinstance(muon, Muon) and isinstance(adam, torch.optim.AdamW)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for g in muon.param_groups for p in g["params"]} == {
        f"blocks.{i}.{m}.weight" for i in range(2) for m in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")}
    assert "tok_emb.weight" in {names[id(p)] for g in adam.param_groups for p in g["params"]}
    set_lr([muon, adam], 5e-4)  # half the peak: both follow the schedule's shape
    assert muon.param_groups[0]["lr"] == pytest.approx(0.01) and adam.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_muon_lowers_the_loss():
    import torch

    from lmforge.config import TrainConfig
    from lmforge.models import next_token_loss
    from lmforge.training.optim import build_optimizers

    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layer=1, n_head=2, n_embd=32, block_size=16), 12)
    optimizers = build_optimizers(model, TrainConfig(optimizer="muon", lr=3e-3), torch.device("cpu"))
    x = torch.randint(12, (4, 17))
    losses = []
    for _ in range(15):
        loss = next_token_loss(model(x[:, :-1]), x[:, 1:])
        loss.backward()
        for opt in optimizers:
            opt.step()
            opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_orthogonalize_maps_each_singular_value_by_the_quintic():
    """Newton–Schulz acts on the singular values alone: U diag(s) Vᵀ becomes U diag(f⁵(s / ‖s‖)) Vᵀ, where
    f(x) = a·x + b·x³ + c·x⁵ and ‖s‖ is the Frobenius norm; worked out here one singular value at a time."""
    a, b, c = 3.4445, -4.7750, 2.0315
    s = [2.0, 1.0, 0.3, 0.05]
    x = [v / math.sqrt(sum(t * t for t in s)) for v in s]
    for _ in range(5):
        x = [a * t + b * t**3 + c * t**5 for t in x]
    torch.manual_seed(0)
    for rows, cols in ((12, 4), (4, 12)):
        u, _ = torch.linalg.qr(torch.randn(rows, 4, dtype=torch.float64))
        v, _ = torch.linalg.qr(torch.randn(cols, 4, dtype=torch.float64))
        g, expected = ((u @ torch.diag(torch.tensor(d, dtype=torch.float64)) @ v.T).float() for d in (s, x))
        torch.testing.assert_close(orthogonalize(g), expected, rtol=0, atol=1e-4)


def test_two_muon_steps_follow_the_formula():
    """Momentum buf = μ·buf + (1-μ)·g; Nesterov update (1-μ)·g + μ·buf, orthogonalized and, for a tall 8×2 matrix,
    scaled by √(8/2) = 2; decoupled weight decay first. Two steps, so that the momentum carried over shows."""
    torch.manual_seed(0)
    lr, mu, decay = 0.1, 0.9, 0.5
    w = torch.randn(8, 2)
    p = nn.Parameter(w.clone())
    opt = Muon([p], lr=lr, momentum=mu, weight_decay=decay)
    buf = torch.zeros(8, 2)
    for g in (torch.randn(8, 2), torch.randn(8, 2)):
        p.grad = g.clone()
        opt.step()
        buf = mu * buf + (1 - mu) * g
        w = w * (1 - lr * decay) - lr * 2.0 * orthogonalize((1 - mu) * g + mu * buf)
        torch.testing.assert_close(p.detach(), w, rtol=1e-5, atol=1e-6)


def test_optimizers_take_their_settings_from_the_config():
    model = build_model(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8), 10)
    cpu, common = torch.device("cpu"), dict(lr=1e-3, weight_decay=0.05, beta1=0.8, beta2=0.9)
    (adam,) = build_optimizers(model, TrainConfig(**common), cpu)
    assert [(g["weight_decay"], g["betas"]) for g in adam.param_groups] == [(0.05, (0.8, 0.9)), (0.0, (0.8, 0.9))]
    muon, adam = build_optimizers(model, TrainConfig(**common, optimizer="muon", muon_lr=0.02, muon_momentum=0.7), cpu)
    (group,) = muon.param_groups  # the hidden matrices: Muon's rate, momentum, and the weight decay
    assert (group["lr"], group["lr_scale"], group["momentum"], group["weight_decay"]) == (0.02, pytest.approx(20), 0.7, 0.05)
    assert [(g["weight_decay"], g["betas"]) for g in adam.param_groups] == [(0.0, (0.8, 0.9))]


def test_only_float16_scales_the_loss():
    cpu = torch.device("cpu")
    assert [grad_scaler(cpu, d).is_enabled() for d in (torch.float16, torch.bfloat16, torch.float32)] == [True, False, False]
