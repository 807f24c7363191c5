"""The KV cache: decoding with it gives the logits of recomputing everything, step after step."""

import pytest
import torch

from lmforge.config import ModelConfig
from lmforge.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

# every value of every transformer option appears in at least one combination
OPTIONS = [
    {},
    {"bias": True},
    {"positions": "rope", "norm": "rmsnorm", "mlp": "swiglu", "qk_norm": True},
    {"positions": "none", "mlp": "relu2", "attention": "explicit", "tie_weights": False},
    {"positions": "rope", "attention": "explicit", "bias": True},
]


def option_id(options: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in options.items()) or "default"


def model_with(block_size=256, **options):
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=32, block_size=block_size, **options)
    return build_model(cfg, 37).eval()


def check_against_recompute(model, prompt, steps, static=False):
    """Feed random tokens one by one; at every step compare with a forward pass over the (cropped) context."""
    block = model.cfg.block_size
    ids = prompt
    g = torch.Generator().manual_seed(1)
    cache = model.new_state(prompt.size(0), static=static)
    worst = 0.0
    with torch.no_grad():
        logits, cache = model.step(prompt, cache)
        for _ in range(steps):
            full = model(ids[:, -block:])[:, -1]
            worst = max(worst, (logits - full).abs().max().item())
            nxt = torch.randint(37, (ids.size(0), 1), generator=g)
            ids = torch.cat([ids, nxt], dim=1)
            logits, cache = model.step(nxt, cache)
    return worst


@pytest.mark.parametrize("options", OPTIONS, ids=option_id)
@pytest.mark.parametrize("static", [False, True], ids=["eager", "static"])
def test_cached_logits_equal_a_full_recompute_at_every_step_of_200(options, static):
    model = model_with(**options)
    prompt = torch.randint(37, (2, 7), generator=torch.Generator().manual_seed(0))
    assert check_against_recompute(model, prompt, 200, static) < 1e-4


@pytest.mark.parametrize("options", OPTIONS, ids=option_id)
@pytest.mark.parametrize("static", [False, True], ids=["eager", "static"])
def test_past_the_context_the_cache_recomputes_the_last_window(options, static):
    model = model_with(block_size=16, **options)
    prompt = torch.randint(37, (2, 5), generator=torch.Generator().manual_seed(0))
    assert check_against_recompute(model, prompt, 40, static) < 1e-4


def test_a_prompt_fed_in_pieces_equals_one_piece():
    model = model_with()
    ids = torch.randint(37, (3, 20), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole, _ = model.step(ids)
        cache = model.new_state(3)
        for a, b in [(0, 6), (6, 7), (7, 20)]:
            part, cache = model.step(ids[:, a:b], cache)
    assert torch.allclose(whole, part, atol=1e-5)
    assert cache.pos == 20


@pytest.mark.parametrize("options", OPTIONS, ids=option_id)
@pytest.mark.parametrize("static", [False, True], ids=["eager", "static"])
def test_left_padded_rows_compute_what_they_compute_alone(options, static):
    model = model_with(**options)
    g = torch.Generator().manual_seed(3)
    prompts = [torch.randint(37, (n,), generator=g).tolist() for n in (9, 1, 4)]
    width = max(map(len, prompts))
    batch = torch.tensor([[5] * (width - len(p)) + p for p in prompts])  # pad with a real token id: must not matter
    pad = torch.tensor([width - len(p) for p in prompts])
    nxt = torch.randint(37, (3, 6), generator=g)
    with torch.no_grad():
        cache = model.new_state(3, 64, pad=pad, static=static)
        logits, cache = model.step(batch, cache)
        outs = [logits]
        for t in range(6):
            logits, cache = model.step(nxt[:, t : t + 1], cache)
            outs.append(logits)
        for r, p in enumerate(prompts):
            alone = [model(torch.tensor([p] + []))[0, -1]]
            seq = torch.tensor([p])
            for t in range(6):
                seq = torch.cat([seq, nxt[r : r + 1, t : t + 1]], dim=1)
                alone.append(model(seq)[0, -1])
            for step, (a, b) in enumerate(zip(outs, alone)):
                assert torch.allclose(a[r], b, atol=1e-5), f"row {r} step {step}"


def test_prefill_copies_one_prompt_into_every_row():
    model = model_with()
    prompt = torch.randint(37, (1, 11), generator=torch.Generator().manual_seed(4))
    nxt = torch.tensor([[1], [2], [3]])
    with torch.no_grad():
        one = model.new_state(1, 32)
        _, one = model.step(prompt, one)
        shared = model.new_state(3, 32)
        shared.prefill(one)
        a, _ = model.step(nxt, shared)
        b, _ = model.step(nxt, model.step(prompt.expand(3, -1), model.new_state(3, 32))[1])
    assert shared.pos == 12
    assert torch.allclose(a, b, atol=1e-6)


def test_reorder_moves_each_rows_history():
    model = model_with()
    ids = torch.randint(37, (3, 8), generator=torch.Generator().manual_seed(5))
    nxt = torch.tensor([[4], [4], [4]])
    with torch.no_grad():
        _, cache = model.step(ids)
        cache = model.reorder_state(cache, torch.tensor([2, 2, 0]))
        got, _ = model.step(nxt, cache)
        want, _ = model.step(nxt, model.step(ids[[2, 2, 0]])[1])
    assert torch.allclose(got, want, atol=1e-6)


def test_reset_empties_the_cache_for_reuse():
    model = model_with()
    ids = torch.randint(37, (1, 8), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        first, cache = model.step(ids)
        cache.reset()
        again, cache = model.step(ids, cache)
    assert torch.equal(first, again) and cache.pos == 8


def test_a_cache_too_small_says_so():
    model = model_with()
    with torch.no_grad():
        cache = model.new_state(1, capacity=4)
        with pytest.raises(ValueError, match="capacity"):
            model.step(torch.zeros(1, 6, dtype=torch.long), cache)


# ---------------------------------------------------------------------- caches whose rows move, past the context


def padded_cache(model, lengths, seed):
    """The prompts (random, of `lengths`) fed left-padded into one cache of the whole context: (prompts, cache)."""
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(37, (n,), generator=g).tolist() for n in lengths]
    width = max(lengths)
    pad = torch.tensor([width - n for n in lengths])
    with torch.no_grad():
        _, cache = model.step(torch.tensor([[5] * (width - len(p)) + p for p in prompts]),
                              model.new_state(len(prompts), pad=pad))
    return prompts, cache


def assert_continues(model, cache, histories, steps=12):
    """Feed random tokens to every row for `steps` steps; each step's logits must be those of a forward pass over
    that row's history (cropped to the context): rows whose cache was moved still hold their own tokens."""
    g = torch.Generator().manual_seed(9)
    histories = [list(h) for h in histories]
    with torch.no_grad():
        for step in range(steps):
            nxt = torch.randint(37, (len(histories), 1), generator=g)
            logits, cache = model.step(nxt, cache)
            for r, h in enumerate(histories):
                h.append(int(nxt[r]))
                want = model(torch.tensor([h[-model.cfg.block_size :]]))[0, -1]
                assert torch.allclose(logits[r], want, atol=1e-5), f"row {r} step {step}"
    return cache


def test_left_padded_rows_past_the_context():
    model = model_with(block_size=16)
    prompts, cache = padded_cache(model, (9, 3, 6), seed=10)
    assert_continues(model, cache, prompts)  # 9 + 12 tokens: the window slides over each row's padding


def test_reorder_moves_each_rows_padding_and_tokens():
    model = model_with(block_size=16)
    prompts, cache = padded_cache(model, (9, 3, 6), seed=11)
    cache = model.reorder_state(cache, torch.tensor([2, 0, 0]))
    assert cache.pad.tolist() == [3, 0, 0]
    assert_continues(model, cache, [prompts[2], prompts[0], prompts[0]])


def test_select_keeps_its_rows_without_the_padding_they_share():
    model = model_with(block_size=16)
    prompts, cache = padded_cache(model, (5, 7, 9), seed=12)  # pads 4, 2, 0
    kept = cache.select(torch.tensor([1, 0]))
    assert (kept.pos, kept.pad.tolist()) == (7, [0, 2])  # the 2 slots of padding both rows had are gone
    assert_continues(model, kept, [prompts[1], prompts[0]])


def test_stack_right_aligns_caches_of_different_lengths():
    model = model_with(block_size=16)
    short_prompts, short = padded_cache(model, (3, 2), seed=13)
    long_prompts, long = padded_cache(model, (8,), seed=14)
    both = type(short).stack([short, long])
    assert (both.pos, both.pad.tolist()) == (8, [5, 6, 0])
    assert_continues(model, both, short_prompts + long_prompts)
