"""Continuous batching: rows that join a running batch late, with settings of their own, still get exactly
the tokens `decode` gives each alone; rows that end or are removed free their place."""

import pytest
import torch

from lmforge.config import DecodeConfig, ModelConfig
from lmforge.generation import decode
from lmforge.generation.continuous import ContinuousBatch
from lmforge.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

V = 23
PROMPTS = [[3, 1, 4, 1, 5, 9, 2, 6], [5], [3, 5, 8, 9], [7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3]]
SETTINGS = [dict(temperature=1.3, top_p=0.9), dict(greedy=True, repetition_penalty=1.3),
            dict(temperature=0.8, top_k=5, presence_penalty=0.5), dict(temperature=1.0, min_p=0.1,
                                                                      frequency_penalty=0.7)]


def model_of(family: str, block_size: int = 64, sharp: bool = True):
    torch.manual_seed(0)
    extra = dict(n_layer=1, n_embd=16) if family == "rnn" else dict(ngram_order=3) if family == "ngram" else {}
    cfg = ModelConfig(family=family, **{**dict(n_layer=2, n_head=2, n_embd=32, block_size=block_size), **extra})
    model = build_model(cfg, V).eval()
    if family == "ngram":
        model.fit_counts(torch.randint(0, V, (2000,), generator=torch.Generator().manual_seed(1)).numpy())
    elif sharp:
        with torch.no_grad():  # sharper logits than a fresh init, so choices are far from ties
            model.tok_emb.weight.mul_(20)
    return model


def alone(model, prompt, cfg, seed, n=1, logprobs=None, details=False):
    """Each row's tokens by `decode` (with `details`: (token, logprob, top ids, top logprobs) per step)."""
    gens = [torch.Generator().manual_seed(seed + i) for i in range(n)]
    steps = list(decode(model, [prompt] * n, cfg, generators=gens, logprobs=logprobs))
    return [[described(s, r) if details else int(s.ids[r]) for s in steps if s.alive[r]] for r in range(n)]


def described(step, r):
    top = None if step.top_ids is None else (step.top_ids[r].tolist(), step.top_logprobs[r].tolist())
    return int(step.ids[r]), None if step.logprobs is None else float(step.logprobs[r]), top


def together(model, arrivals, steps_between=3, logprobs=None, details=False):
    """Decode requests (prompt, cfg, seed, n) arriving `steps_between` steps apart (0: all before the first
    step); the tokens of each row. `logprobs`: request i's, `logprobs[i]`."""
    batch, out, pending = ContinuousBatch(model), {}, list(arrivals)
    tick = 0
    while pending or batch.rows:
        while pending and tick % max(steps_between, 1) == 0:
            i = len(arrivals) - len(pending)
            prompt, cfg, seed, n = pending.pop(0)
            gens = [torch.Generator().manual_seed(seed + j) for j in range(n)]
            k = None if logprobs is None else logprobs[i]
            for row in batch.add(prompt, cfg, gens, k, tags=[(i, j) for j in range(n)]):
                out[row.tag] = []
            if steps_between:
                break
        for row, step in batch.step():
            out[row.tag].append(described(step, 0) if details else int(step.ids[0]))
        tick += 1
    return out


@pytest.mark.parametrize("family", ["transformer", "rnn", "ngram"])
def test_rows_that_join_late_with_their_own_settings_match_each_alone(family):
    model = model_of(family)
    arrivals = [(p, DecodeConfig(max_new_tokens=12 + 5 * i, **s), 100 + i, 1 + (i == 2))
                for i, (p, s) in enumerate(zip(PROMPTS, SETTINGS))]
    got = together(model, arrivals)
    for i, (prompt, cfg, seed, n) in enumerate(arrivals):
        for j, tokens in enumerate(alone(model, prompt, cfg, seed, n)):
            assert got[(i, j)] == tokens, f"request {i} choice {j}"


def test_prompts_that_arrive_together_are_fed_in_one_call_and_match_each_alone():
    """Prompts of different lengths, fed left-padded in one model call, decode as each does alone; a prompt sent
    twice is computed once, and one that fills the context is fed alone (its window slides)."""
    model = model_of("transformer", block_size=16)
    calls = []
    model.step = lambda ids, state, step=model.step: calls.append(tuple(ids.shape)) or step(ids, state)
    prompts = [*PROMPTS, PROMPTS[2], list(range(1, 19))]  # the last is longer than the context
    arrivals = [(p, DecodeConfig(max_new_tokens=10, **s), 50 + i, 1 + (i == 0))
                for i, (p, s) in enumerate(zip(prompts, SETTINGS + SETTINGS[:2]))]
    got = together(model, arrivals, steps_between=0)
    assert calls[:2] == [(4, 12), (1, 18)], "the prompts were not fed together, each once"
    for i, (prompt, cfg, seed, n) in enumerate(arrivals):
        for j, tokens in enumerate(alone(model, prompt, cfg, seed, n)):
            assert got[(i, j)] == tokens, f"request {i} choice {j}"


def test_rows_of_equal_settings_are_chosen_together_with_their_own_counts_and_logprobs():
    """Rows that share one pass of the processors still penalize their own history, draw with their own
    generator and report the log-probabilities each asked for."""
    model = model_of("transformer")
    settings = dict(temperature=1.2, top_k=12, repetition_penalty=1.4, presence_penalty=0.4, frequency_penalty=0.3)
    arrivals = [(p, DecodeConfig(max_new_tokens=14, **settings), 300 + i, 1 + (i == 1)) for i, p in enumerate(PROMPTS)]
    ks = [None, 3, 0, 5]
    got = together(model, arrivals, steps_between=2, logprobs=ks, details=True)
    for i, (prompt, cfg, seed, n) in enumerate(arrivals):
        for j, steps in enumerate(alone(model, prompt, cfg, seed, n, ks[i], details=True)):
            mine = got[(i, j)]
            assert [s[0] for s in mine] == [s[0] for s in steps], f"request {i} choice {j}"
            for (_, lp, top), (_, lp_alone, top_alone) in zip(mine, steps):
                assert (lp is None) == (lp_alone is None) and (top is None) == (top_alone is None)
                if lp is not None:
                    assert lp == pytest.approx(lp_alone, abs=1e-4)
                if top is not None:
                    assert top[0] == top_alone[0] and top[1] == pytest.approx(top_alone[1], abs=1e-4)


def test_rows_past_the_context_slide_their_window_as_alone():
    model = model_of("transformer", block_size=16)  # prompt 12 + 30 tokens: every row ends past the context
    arrivals = [(p, DecodeConfig(max_new_tokens=30, **s), 7 + i, 1) for i, (p, s) in enumerate(zip(PROMPTS, SETTINGS))]
    got = together(model, arrivals, steps_between=4)
    for i, (prompt, cfg, seed, _) in enumerate(arrivals):
        assert got[(i, 0)] == alone(model, prompt, cfg, seed)[0], f"request {i}"


def test_eos_ends_a_row_and_a_removed_row_frees_its_place_at_the_next_step():
    model = model_of("transformer", sharp=False)  # near-uniform: a sample that does not repeat one token
    batch = ContinuousBatch(model)
    sampled = alone(model, PROMPTS[0], DecodeConfig(max_new_tokens=20, temperature=1.0), 0)[0]
    at = next(k for k in range(2, 20) if sampled[k] not in sampled[:k])  # a later step whose token is new
    cfg = DecodeConfig(max_new_tokens=20, temperature=1.0, eos_id=sampled[at])
    first = batch.add(PROMPTS[0], cfg, [torch.Generator().manual_seed(0)])[0]
    keep, drop = batch.add(PROMPTS[3], DecodeConfig(max_new_tokens=20, greedy=True), [None, None])
    batch.step()
    assert len(batch.groups) == 1 and batch.groups[0].state.batch_size == 3
    batch.remove(drop)
    batch.step()
    assert [g.state.batch_size for g in batch.groups] == [2] and drop not in batch.rows
    tokens = [int(step.ids[0]) for _ in range(at - 1) for row, step in batch.step() if row is first]
    assert tokens == sampled[2 : at + 1] and first.ended and first not in batch.rows
    batch.step()
    assert batch.groups[0].rows == [keep]
    # the row left is shorter than the one that ended: the slots only that one needed are dropped
    assert batch.groups[0].state.pad.tolist() == [0] and batch.groups[0].state.pos == len(PROMPTS[3]) + at + 1


def test_max_new_tokens_zero_gives_a_row_that_has_already_ended():
    batch = ContinuousBatch(model_of("transformer"))
    (row,) = batch.add([1, 2], DecodeConfig(max_new_tokens=0), [None])
    assert row.ended and batch.rows == [] and batch.step() == []


def test_drop_ended_lets_go_of_the_caches_of_rows_that_ended_or_left():
    batch = ContinuousBatch(model_of("transformer"))
    rows = batch.add(PROMPTS[0], DecodeConfig(max_new_tokens=20, greedy=True), [None, None])
    batch.step()
    for row in rows:
        batch.remove(row)
    assert batch.rows == [] and batch.groups  # ended, but their cache is held until the next step
    batch.drop_ended()
    assert batch.groups == [] and batch.waiting == []


def test_a_prompt_whose_rows_all_left_before_the_next_step_is_never_fed():
    model = model_of("transformer")
    calls = []
    model.step = lambda ids, state, step=model.step: calls.append(tuple(ids.shape)) or step(ids, state)
    batch = ContinuousBatch(model)
    gone = batch.add(PROMPTS[0], DecodeConfig(max_new_tokens=5, greedy=True), [None, None])
    (kept,) = batch.add(PROMPTS[2], DecodeConfig(max_new_tokens=5, greedy=True), [None])
    for row in gone:
        batch.remove(row)
    assert [row for row, _ in batch.step()] == [kept] and calls == [(1, len(PROMPTS[2]))]

