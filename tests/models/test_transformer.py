import math

import torch

from lmforge.config import ModelConfig
from lmforge.models import build_model, next_token_loss


def tiny_model(**overrides) -> torch.nn.Module:
    cfg = ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=12, vocab_size=11, **overrides)
    torch.manual_seed(0)
    return build_model(cfg).eval()


def test_logits_have_batch_time_vocab_shape():
    model = tiny_model()
    assert model(torch.randint(11, (3, 7))).shape == (3, 7, 11)


def test_changing_a_future_token_never_changes_earlier_logits():
    model = tiny_model()
    ids = torch.randint(11, (1, 12))
    base = model(ids)
    for t in range(12):
        changed = ids.clone()
        changed[0, t] = (changed[0, t] + 1) % 11
        out = model(changed)
        assert torch.allclose(out[0, :t], base[0, :t], atol=1e-6), f"position < {t} saw token {t}"
        assert not torch.allclose(out[0, t:], base[0, t:]), "the changed token must matter from its own position on"


def test_output_head_is_tied_to_the_embedding():
    model = tiny_model()
    assert model.head.weight is model.tok_emb.weight
    assert model.num_params() == sum(p.numel() for p in model.parameters())


def test_loss_is_the_mean_negative_log_probability_of_the_targets():
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]]])  # (B=1, T=2, V=3)
    targets = torch.tensor([[0, 2]])
    p0 = math.exp(2) / (math.exp(2) + 1 + math.exp(-1))
    expected = (-math.log(p0) - math.log(1 / 3)) / 2
    assert abs(next_token_loss(logits, targets).item() - expected) < 1e-6


def test_a_tiny_model_overfits_one_batch():
    model = tiny_model().train()
    x = torch.randint(11, (4, 12), generator=torch.Generator().manual_seed(1))
    y = torch.roll(x, -1, dims=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss = next_token_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_step_continues_like_a_full_forward():
    model = tiny_model()
    ids = torch.randint(11, (2, 9))
    logits, state = model.step(ids[:, :5])
    for t in range(5, 9):
        logits, state = model.step(ids[:, t : t + 1], state)
    assert torch.allclose(logits, model(ids)[:, -1], atol=1e-6)
