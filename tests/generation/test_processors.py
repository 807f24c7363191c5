import torch

from lmforge.generation import apply_temperature, sample_next, top_k_filter, top_p_filter


def test_top_k_1_is_greedy():
    logits = torch.randn(16, 50, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        assert torch.equal(sample_next(logits, top_k=1, temperature=1.3, generator=gen), logits.argmax(-1))
    assert torch.equal(sample_next(logits, greedy=True), logits.argmax(-1))


def test_top_k_keeps_exactly_k():
    logits = torch.tensor([[1.0, 5.0, 3.0, 2.0, 4.0]])
    kept = torch.isfinite(top_k_filter(logits, 2))
    assert kept.tolist() == [[False, True, False, False, True]]


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    assert torch.isfinite(top_p_filter(logits, 0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.8)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.81)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(top_p_filter(logits, 1e-9)).tolist() == [[True, False, False, False]]


def test_top_p_works_on_unsorted_rows():
    logits = torch.tensor([[0.15, 0.05, 0.5, 0.3]]).log()
    assert torch.isfinite(top_p_filter(logits, 0.7)).tolist() == [[False, False, True, True]]


def test_temperature_scales_and_sampling_is_seeded():
    logits = torch.randn(4, 30)
    assert torch.allclose(apply_temperature(logits, 0.5), logits * 2)
    a = sample_next(logits, temperature=0.9, generator=torch.Generator().manual_seed(7))
    b = sample_next(logits, temperature=0.9, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_low_temperature_concentrates_on_the_argmax():
    logits = torch.tensor([[1.0, 1.5, 0.5]])
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_next(logits, temperature=0.01, generator=gen) for _ in range(50)])
    assert (draws == 1).all()
