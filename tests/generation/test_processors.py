import torch

from sampling_helpers import sample_next

from lmforge.generation import apply_temperature, top_k_filter, top_p_filter


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


# ---------------------------------------------------------------------- the processors added with the engine

from lmforge.config import DecodeConfig  # noqa: E402
from lmforge.generation import Sampler, ban_tokens, min_p_filter, presence_frequency_penalty, repetition_penalty  # noqa: E402


def test_min_p_keeps_tokens_within_a_factor_of_the_top():
    logits = torch.tensor([[0.5, 0.25, 0.15, 0.1]]).log()
    assert torch.isfinite(min_p_filter(logits, 0.5)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(min_p_filter(logits, 0.3)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(min_p_filter(logits, 1.0)).tolist() == [[True, False, False, False]]


def test_repetition_penalty_always_makes_a_seen_token_less_likely():
    logits = torch.tensor([[2.0, -2.0, 1.0, -1.0]])
    seen = torch.tensor([[True, True, False, False]])
    out = repetition_penalty(logits, seen, 2.0)
    assert out.tolist() == [[1.0, -4.0, 1.0, -1.0]]


def test_presence_and_frequency_penalties_follow_openais_formula():
    logits = torch.zeros(1, 4)
    counts = torch.tensor([[0, 1, 3, 0]])
    out = presence_frequency_penalty(logits, counts, presence=0.5, frequency=0.25)
    assert torch.allclose(out, torch.tensor([[0.0, -0.75, -1.25, 0.0]]))


def test_banned_tokens_get_minus_infinity():
    out = ban_tokens(torch.zeros(2, 5), torch.tensor([1, 3]))
    assert torch.isinf(out).tolist() == [[False, True, False, True, False]] * 2


def test_sampler_bans_before_it_filters():
    """Banning the favourite and keeping top-1 must give the runner-up, never an empty distribution."""
    logits = torch.tensor([[5.0, 4.0, 1.0, 0.0]])
    sampler = Sampler(DecodeConfig(top_k=1, banned_ids=(0,)), 4, torch.tensor([[2]]))
    gen = torch.Generator().manual_seed(0)
    assert {int(sampler.choose(logits, gen)) for _ in range(20)} == {1}


def test_sampler_counts_prompt_for_repetition_but_only_output_for_presence():
    prompt = torch.tensor([[1, 1, 2]])
    sampler = Sampler(DecodeConfig(repetition_penalty=2.0, presence_penalty=1.0), 4, prompt)
    out = sampler.process(torch.ones(1, 4))
    assert out.tolist() == [[1.0, 0.5, 0.5, 1.0]]  # prompt tokens 1, 2 penalized once; presence sees no output yet
    sampler.record(torch.tensor([3]))
    assert sampler.process(torch.ones(1, 4)).tolist() == [[1.0, 0.5, 0.5, -0.5]]  # 1/2 then -1


def test_sampler_ignores_padding_when_counting_the_prompt():
    prompt = torch.tensor([[0, 0, 3], [2, 0, 1]])
    mask = torch.tensor([[False, False, True], [True, True, True]])
    sampler = Sampler(DecodeConfig(repetition_penalty=2.0), 4, prompt, mask)
    assert sampler.seen.tolist() == [[False, False, False, True], [True, True, True, False]]


def test_per_row_generators_make_each_row_independent_of_the_others():
    logits = torch.randn(3, 40, generator=torch.Generator().manual_seed(3))
    gens = [torch.Generator().manual_seed(10 + i) for i in range(3)]
    together = sample_next(logits, temperature=1.5, generator=gens)
    alone = [int(sample_next(logits[i : i + 1], temperature=1.5, generator=torch.Generator().manual_seed(10 + i)))
             for i in range(3)]
    assert together.tolist() == alone


def test_a_per_row_draw_picks_what_torch_multinomial_picks_with_the_same_generator():
    """`draw` with one generator per row races exponential noise itself, relying on that being how
    `torch.multinomial` draws one sample; a torch that draws otherwise would break the promise that a
    seeded request in a server batch equals `lmforge sample`. Flat, peaked and sparse rows."""
    from lmforge.generation.processors import draw

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(600, 50, generator=g) * torch.tensor([0.1, 1.0, 8.0]).repeat(200)[:, None]
    logits[::5, 10:] = float("-inf")  # rows with most tokens filtered out, as top-k leaves them
    probs = logits.softmax(dim=-1)
    seeds = range(1000, 1600)
    ours = draw(probs, [torch.Generator().manual_seed(s) for s in seeds])
    theirs = [int(torch.multinomial(probs[i : i + 1], 1, generator=torch.Generator().manual_seed(s)))
              for i, s in enumerate(seeds)]
    assert ours.tolist() == theirs
    assert len(set(theirs)) > 20  # the rows really are drawn, not all argmax


# ---------------------------------------------------------------------- boundaries that random logits never reach


def test_top_k_keeps_the_ties_of_the_kth_logit():
    """As Hugging Face's TopKLogitsWarper does: two logits of 3 both survive top-1 (an indices-based top-k kept one)."""
    logits = torch.tensor([[1.0, 3.0, 3.0, 2.0]])
    assert torch.isfinite(top_k_filter(logits, 1)).tolist() == [[False, True, True, False]]
    assert torch.isfinite(top_k_filter(logits, 3)).tolist() == [[False, True, True, True]]


def test_top_p_stops_at_a_set_that_reaches_p_exactly():
    """Powers of two, so the cumulative sums are exact: 0.5 + 0.25 is 0.75, so at p = 0.75 the third token is not
    needed (a `>` for `>=` kept it; Hugging Face drops it too)."""
    logits = torch.tensor([[0.125, 0.5, 0.125, 0.25]]).log()
    assert torch.isfinite(top_p_filter(logits, 0.75)).tolist() == [[False, True, False, True]]
    assert torch.isfinite(top_p_filter(logits, 0.875)).tolist() == [[True, True, False, True]]
    assert torch.isfinite(top_p_filter(logits, 0.876)).tolist() == [[True, True, True, True]]


def test_frequency_penalty_counts_every_occurrence_of_the_output():
    """Frequency alone (presence 0) still applies, once per occurrence: 2 chosen twice costs 2 × 0.5."""
    sampler = Sampler(DecodeConfig(frequency_penalty=0.5), 4, torch.tensor([[3]]))
    for token in (2, 2, 1):
        sampler.record(torch.tensor([token]))
    assert sampler.process(torch.zeros(1, 4)).tolist() == [[0.0, -0.5, -1.0, 0.0]]  # the prompt's 3 is not counted


def test_reorder_moves_the_penalty_counts_with_the_rows():
    """Beam search moves histories between rows: both the seen tokens and the output counts follow."""
    sampler = Sampler(DecodeConfig(repetition_penalty=2.0, presence_penalty=1.0), 4, torch.tensor([[0], [3]]))
    sampler.record(torch.tensor([1, 2]))
    sampler.reorder(torch.tensor([1, 1]))  # both rows now hold row 1's history: prompt 3, output 2
    assert sampler.process(torch.ones(2, 4)).tolist() == [[1.0, 1.0, -0.5, 0.5]] * 2  # 2: 1/2 - 1; 3: 1/2
