import itertools
import math

import pytest
import torch

from lmforge.config import ModelConfig
from lmforge.models import build_model, next_token_loss


def tiny_model(**overrides) -> torch.nn.Module:
    cfg = ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=12, **overrides)
    torch.manual_seed(0)
    return build_model(cfg, 11).eval()


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


# ---------------------------------------------------------------------- options


def test_defaults_are_the_original_model():
    """learned positions, LayerNorm, GELU, tied head, no QK-norm, fused attention: the same weights as before."""
    cfg = ModelConfig()
    assert (cfg.positions, cfg.norm, cfg.mlp, cfg.tie_weights, cfg.qk_norm, cfg.attention) == (
        "learned", "layernorm", "gelu", True, False, "fused")
    model = tiny_model()
    assert [name for name, _ in model.named_parameters()][:8] == [
        "tok_emb.weight", "pos_emb.weight", "blocks.0.norm1.weight", "blocks.0.attn.qkv.weight",
        "blocks.0.attn.proj.weight", "blocks.0.norm2.weight", "blocks.0.mlp.fc.weight", "blocks.0.mlp.proj.weight"]
    assert isinstance(model.blocks[0].norm1, torch.nn.LayerNorm) and model.blocks[0].mlp.fc.out_features == 64


def test_explicit_attention_equals_the_fused_kernel():
    from lmforge.models.layers import explicit_attention, fused_attention

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 10, 8, generator=gen) for _ in range(3))
    assert torch.allclose(explicit_attention(q, k, v), fused_attention(q, k, v), atol=1e-5)
    # queries that follow cached keys (T < S): the mask lines up with the last T positions
    assert torch.allclose(explicit_attention(q[:, :, -3:], k, v), fused_attention(q[:, :, -3:], k, v), atol=1e-5)
    assert torch.allclose(explicit_attention(q[:, :, -3:], k, v), explicit_attention(q, k, v)[:, :, -3:], atol=1e-6)


@pytest.mark.parametrize("options", [{}, {"positions": "rope", "qk_norm": True}, {"norm": "rmsnorm", "mlp": "swiglu"},
                                     {"positions": "none", "mlp": "relu2", "tie_weights": False}])
def test_explicit_and_fused_models_agree(options):
    fused = tiny_model(attention="fused", **options)
    explicit = tiny_model(attention="explicit", **options)
    explicit.load_state_dict(fused.state_dict())
    ids = torch.randint(11, (3, 12))
    assert torch.allclose(explicit(ids), fused(ids), atol=1e-5)


def test_rope_rotates_each_pair_by_position_times_its_frequency():
    from lmforge.models.layers import RotaryEmbedding, apply_rotary

    hs, base = 4, 100.0
    rope = RotaryEmbedding(hs, max_positions=8, base=base)
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).expand(1, 1, 8, 4)  # (B, nh, T, hs): the same vector at every position
    out = apply_rotary(x, *rope(torch.arange(8)))
    for p in range(8):
        # pairs are (channel 0, channel 2) with angle p·base^0 and (channel 1, channel 3) with angle p·base^(-2/4)
        a0, a1 = p * 1.0, p * base ** (-0.5)
        want = [1 * math.cos(a0) - 3 * math.sin(a0), 2 * math.cos(a1) - 4 * math.sin(a1),
                1 * math.sin(a0) + 3 * math.cos(a0), 2 * math.sin(a1) + 4 * math.cos(a1)]
        assert torch.allclose(out[0, 0, p], torch.tensor(want), atol=1e-5), p


def test_rope_scores_depend_only_on_the_distance():
    from lmforge.models.layers import RotaryEmbedding, apply_rotary

    rope = RotaryEmbedding(8, max_positions=16)
    q, k = torch.randn(8), torch.randn(8)

    def score(m, n):
        rq = apply_rotary(q.expand(1, 1, 16, 8), *rope(torch.arange(16)))[0, 0, m]
        rk = apply_rotary(k.expand(1, 1, 16, 8), *rope(torch.arange(16)))[0, 0, n]
        return float(rq @ rk)

    assert math.isclose(score(5, 2), score(13, 10), rel_tol=1e-4)
    assert not math.isclose(score(5, 2), score(5, 3), rel_tol=1e-3)


def test_rmsnorm_scales_to_unit_root_mean_square():
    from lmforge.models.layers import make_norm

    x = torch.randn(4, 16, generator=torch.Generator().manual_seed(0)) * 5 + 2
    norm = make_norm("rmsnorm", 16, bias=True)  # no bias and no centring, whatever `bias` says
    assert [n for n, _ in norm.named_parameters()] == ["weight"]
    y = norm(x)
    assert torch.allclose(y.pow(2).mean(-1), torch.ones(4), atol=1e-4)
    # the formula itself: a unit mean square alone also holds for LayerNorm, which centres x (mean 2 here)
    assert torch.allclose(y, x / x.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt(), atol=1e-5)


def test_qk_norm_normalizes_the_keys_with_their_own_weights():
    """Scaling the query norm's weights by c or the key norm's by c both scale every score by c; a model whose
    keys went through the query norm ignores the key norm (equal weights at init hide that)."""
    base = tiny_model(qk_norm=True)
    ids = torch.randint(11, (2, 12), generator=torch.Generator().manual_seed(0))
    scaled = {}
    for which in ("q_norm", "k_norm"):
        model = tiny_model(qk_norm=True)
        with torch.no_grad():
            for block in model.blocks:
                getattr(block.attn, which).weight.mul_(3.0)
            scaled[which] = model(ids)
    assert torch.allclose(scaled["q_norm"], scaled["k_norm"], atol=1e-5)
    assert not torch.allclose(scaled["k_norm"], base(ids), atol=1e-3)


def test_projections_into_the_residual_stream_start_smaller_with_depth():
    """GPT-2's init: std 0.02 / √(2 · n_layer) for the two output projections of each block, 0.02 elsewhere."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layer=8, n_head=2, n_embd=64, block_size=8), 11)
    for name, p in model.named_parameters():
        if p.dim() == 2:
            want = 0.02 / 4 if name.endswith("proj.weight") else 0.02
            assert abs(p.std().item() / want - 1) < 0.1, name


@pytest.mark.parametrize("positions", ["learned", "rope", "none"])
def test_every_position_option_is_causal_and_steps_like_a_full_forward(positions):
    model = tiny_model(positions=positions, qk_norm=True)
    ids = torch.randint(11, (2, 12))
    base = model(ids)
    changed = ids.clone()
    changed[:, 6] = (changed[:, 6] + 1) % 11
    assert torch.allclose(model(changed)[:, :6], base[:, :6], atol=1e-6)
    logits, state = model.step(ids[:, :5])
    for t in range(5, 12):
        logits, state = model.step(ids[:, t : t + 1], state)
    assert torch.allclose(logits, base[:, -1], atol=1e-5)


def test_untied_head_has_its_own_weights():
    tied, untied = tiny_model(), tiny_model(tie_weights=False)
    assert untied.head.weight is not untied.tok_emb.weight
    assert untied.num_params() == tied.num_params() + 11 * 16


def test_every_option_combination_trains_a_few_steps():
    """3 positions × 2 norms × 3 MLPs × tied or not × QK-norm or not × 2 attentions, each with and without dropout."""
    x = torch.randint(11, (4, 8), generator=torch.Generator().manual_seed(1))
    y = torch.roll(x, -1, dims=1)
    combos = itertools.product(["learned", "rope", "none"], ["layernorm", "rmsnorm"], ["gelu", "swiglu", "relu2"],
                               [True, False], [False, True], ["fused", "explicit"])
    for i, (positions, norm, mlp, tie, qk_norm, attention) in enumerate(combos):
        cfg = ModelConfig(n_layer=1, n_head=2, n_embd=8, block_size=8, positions=positions, norm=norm,
                          mlp=mlp, tie_weights=tie, qk_norm=qk_norm, attention=attention, dropout=0.1 * (i % 2))
        torch.manual_seed(i)
        model = build_model(cfg, 11).train()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
        losses = []
        for _ in range(4):
            loss = next_token_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0], (cfg, losses)
