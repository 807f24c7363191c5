"""Each processor against Hugging Face `transformers`' processor of the same name, on random logits."""

import pytest
import torch
from sampling_helpers import sample_next

from lmforge.config import DecodeConfig
from lmforge.generation import (
    Sampler,
    apply_temperature,
    ban_tokens,
    min_p_filter,
    repetition_penalty,
    top_k_filter,
    top_p_filter,
)

lp = pytest.importorskip("transformers.generation.logits_process")

V = 200


def random_logits(seed: int, rows: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, V, generator=g) * (1 + 3 * torch.rand(rows, 1, generator=g))  # sharp and flat rows


def assert_same_distribution(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert torch.equal(torch.isfinite(ours), torch.isfinite(theirs)), "different tokens were kept"
    assert torch.allclose(ours.softmax(-1), theirs.softmax(-1), atol=1e-6)


IDS = torch.zeros(6, 1, dtype=torch.long)  # processors that ignore the history still take input_ids


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("t", [0.3, 0.7, 1.0, 1.8])
def test_temperature(seed, t):
    x = random_logits(seed)
    assert_same_distribution(apply_temperature(x, t), lp.TemperatureLogitsWarper(t)(IDS, x))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 2, 10, 50, V - 1, V])
def test_top_k(seed, k):
    x = random_logits(seed)
    assert_same_distribution(top_k_filter(x, k), lp.TopKLogitsWarper(k)(IDS, x))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("p", [1e-6, 0.05, 0.3, 0.5, 0.9, 0.99])
def test_top_p(seed, p):
    x = random_logits(seed)
    assert_same_distribution(top_p_filter(x, p), lp.TopPLogitsWarper(p)(IDS, x))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("p", [0.0, 0.01, 0.1, 0.5, 1.0])
def test_min_p(seed, p):
    x = random_logits(seed)
    assert_same_distribution(min_p_filter(x, p), lp.MinPLogitsWarper(p)(IDS, x))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("r", [0.5, 1.3, 2.0])
def test_repetition_penalty(seed, r):
    x = random_logits(seed)
    history = torch.randint(V, (6, 30), generator=torch.Generator().manual_seed(seed))
    seen = torch.zeros(6, V, dtype=torch.bool).scatter_(1, history, True)
    ours = repetition_penalty(x, seen, r)
    assert torch.allclose(ours, lp.RepetitionPenaltyLogitsProcessor(r)(history, x.clone()))
    assert torch.allclose(Sampler(DecodeConfig(repetition_penalty=r), V, history).process(x), ours)


@pytest.mark.parametrize("seed", range(4))
def test_banned_tokens(seed):
    x = random_logits(seed)
    banned = torch.randperm(V, generator=torch.Generator().manual_seed(seed))[:37]
    theirs = lp.SuppressTokensLogitsProcessor(banned.tolist())(IDS, x)
    assert_same_distribution(ban_tokens(x, banned), theirs)


@pytest.mark.parametrize("seed", range(6))
def test_the_whole_chain_in_huggingface_order(seed):
    g = torch.Generator().manual_seed(100 + seed)
    x = random_logits(seed)
    history = torch.randint(V, (6, 20), generator=g)
    banned = torch.randint(V, (15,), generator=g).unique()
    cfg = DecodeConfig(repetition_penalty=1.4, banned_ids=tuple(banned.tolist()), temperature=0.7, top_k=40,
                       top_p=0.85, min_p=0.05)
    sampler = Sampler(cfg, V, history)
    ours = sampler.warp(sampler.process(x))
    chain = lp.LogitsProcessorList([
        lp.RepetitionPenaltyLogitsProcessor(1.4), lp.SuppressTokensLogitsProcessor(banned.tolist()),
        lp.TemperatureLogitsWarper(0.7), lp.TopKLogitsWarper(40), lp.TopPLogitsWarper(0.85), lp.MinPLogitsWarper(0.05),
    ])
    assert_same_distribution(ours, chain(history, x.clone()))


# ---------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("seed", range(4))
def test_top_p_so_small_that_one_token_remains(seed):
    x = random_logits(seed)
    for p in (1e-12, 1e-6):
        ours, theirs = top_p_filter(x, p), lp.TopPLogitsWarper(p)(IDS, x)
        assert torch.isfinite(ours).sum(-1).tolist() == [1] * 6
        assert_same_distribution(ours, theirs)
        assert torch.equal(ours.argmax(-1), x.argmax(-1))


@pytest.mark.parametrize("seed", range(4))
def test_top_k_1_is_greedy(seed):
    """Sampling with top-k 1, even hot, and greedy decoding both give the one token Hugging Face's top-k 1 keeps."""
    x = random_logits(seed)
    theirs = lp.TopKLogitsWarper(1)(IDS, x)
    assert torch.isfinite(theirs).sum(-1).tolist() == [1] * 6
    kept = theirs.argmax(-1)
    assert torch.equal(sample_next(x, greedy=True), kept)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(5):
        assert torch.equal(sample_next(x, top_k=1, temperature=2.0, generator=gen), kept)


@pytest.mark.parametrize("seed", range(4))
def test_temperature_near_zero_is_greedy(seed):
    x = random_logits(seed)
    t = 1e-4
    ours, theirs = apply_temperature(x, t), lp.TemperatureLogitsWarper(t)(IDS, x)
    assert_same_distribution(ours, theirs)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(5):
        assert torch.equal(sample_next(x, temperature=t, generator=gen), x.argmax(-1))


@pytest.mark.parametrize("seed", range(4))
def test_all_tokens_banned_but_one(seed):
    x = random_logits(seed)
    keep = seed * 13 % V
    banned = [i for i in range(V) if i != keep]
    ours = ban_tokens(x, torch.tensor(banned))
    assert_same_distribution(ours, lp.SuppressTokensLogitsProcessor(banned)(IDS, x))
    cfg = DecodeConfig(banned_ids=tuple(banned), temperature=0.5, top_k=5, top_p=0.5, min_p=0.2).validate(V)
    sampler = Sampler(cfg, V, IDS)
    gen = torch.Generator().manual_seed(seed)
    assert sampler.choose(x, gen).tolist() == [keep] * 6
    assert torch.isfinite(sampler.warp(sampler.process(x))).sum(-1).tolist() == [1] * 6
