"""Beam search: exact when the beams cover everything, and token for token what `transformers` finds."""

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from lmforge.config import DecodeConfig, ModelConfig
from lmforge.generation import beam_search, decode
from lmforge.generation.beam import Beam
from lmforge.models import FAMILIES, build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(vocab=50, seed=0):
    torch.manual_seed(seed)
    model = build_model(ModelConfig(n_layer=2, n_head=4, n_embd=32, block_size=64), vocab).eval()
    with torch.no_grad():
        model.tok_emb.weight.mul_(10)  # sharper distributions than a fresh init
    return model


def test_enough_beams_find_the_most_likely_continuation():
    model = tiny(vocab=4)
    prompt = [1, 2, 3]
    best, best_lp = None, -float("inf")
    for cont in itertools.product(range(4), repeat=3):
        ids = torch.tensor([prompt + list(cont)])
        logp = torch.log_softmax(model(ids)[0], -1)
        total = sum(logp[len(prompt) - 1 + i, t].item() for i, t in enumerate(cont))
        if total > best_lp:
            best, best_lp = list(cont), total
    [beam] = beam_search(model, prompt, DecodeConfig(max_new_tokens=3, num_beams=16), top_logprobs=2)
    assert beam.ids == best
    assert beam.score == pytest.approx(best_lp / 3, abs=1e-5)  # length penalty 1: mean log-probability
    assert sum(beam.logprobs) == pytest.approx(best_lp, abs=1e-5)
    logp = torch.log_softmax(model(torch.tensor([prompt + best]))[0], -1)[len(prompt) - 1 : -1]  # (3, V)
    top = logp.topk(2, dim=-1)  # each step's two most likely tokens, under the beam's own history
    assert beam.top_ids == top.indices.tolist()
    assert torch.allclose(torch.tensor(beam.top_logprobs), top.values, atol=1e-5)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_enough_beams_find_the_most_likely_continuation_for_every_family(family):
    torch.manual_seed(0)
    model = build_model(ModelConfig(family=family, n_layer=2, n_head=2, n_embd=16, block_size=16), 4).eval()
    if getattr(model, "fitted_by_counts", False):  # the n-gram: counts of a text with some structure
        g = np.random.default_rng(0)
        model.fit_counts(np.where(g.random(600) < 0.7, np.arange(600) % 4, g.integers(0, 4, 600)).astype(np.uint16))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8)  # sharper distributions than a fresh init, so the best continuation is clear
    prompt = [1, 2, 3]
    scores = {}
    for cont in itertools.product(range(4), repeat=3):
        logp = torch.log_softmax(model(torch.tensor([prompt + list(cont)]))[0].float(), -1)
        scores[cont] = sum(logp[len(prompt) - 1 + i, t].item() for i, t in enumerate(cont))
    best, second = sorted(scores, key=scores.get, reverse=True)[:2]
    assert scores[best] > scores[second] + 1e-6, "the test needs one clear best continuation"
    [beam] = beam_search(model, prompt, DecodeConfig(max_new_tokens=3, num_beams=16))
    assert tuple(beam.ids) == best


def test_one_beam_is_greedy():
    model = tiny()
    cfg = DecodeConfig(max_new_tokens=15, greedy=True)
    greedy = [int(s.ids[0]) for s in decode(model, [[4, 5, 6]], cfg)]
    [beam] = beam_search(model, [4, 5, 6], DecodeConfig(max_new_tokens=15, num_beams=1))
    assert beam.ids == greedy


def test_edge_cases():
    model = tiny()
    assert beam_search(model, [4], DecodeConfig(max_new_tokens=0, num_beams=3)) == [Beam([], 0.0, False, [], [], [])]
    with pytest.raises(ValueError, match="can return 1 to 3 beams, not 4"):
        beam_search(model, [4], DecodeConfig(max_new_tokens=2, num_beams=3), num_return=4)
    with pytest.raises(ValueError, match="at least one token"):
        beam_search(model, [], DecodeConfig(max_new_tokens=2, num_beams=3))


def load_twin():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "gpt2_twin.py"
    spec = importlib.util.spec_from_file_location("gpt2_twin", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_beams_are_transformers(model, hf, prompt, cfg, num_return):
    """`beam_search`'s `num_return` best beams are those of `hf.generate` (token for token, score to 1e-4)."""
    ours = beam_search(model, prompt, cfg, num_return=num_return)
    eos = cfg.eos_id
    out = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                      do_sample=False, num_beams=cfg.num_beams, max_new_tokens=cfg.max_new_tokens,
                      length_penalty=cfg.length_penalty, eos_token_id=eos, pad_token_id=0 if eos is None else eos,
                      repetition_penalty=cfg.repetition_penalty, num_return_sequences=num_return, output_scores=True,
                      return_dict_in_generate=True, early_stopping=False)
    for r, beam in enumerate(ours):
        theirs = out.sequences[r, len(prompt) :].tolist()
        if beam.ended_by_eos:
            assert eos in theirs, f"beam {r}"
            theirs = theirs[: theirs.index(eos)]
        else:
            assert eos not in theirs
        assert beam.ids == theirs, f"beam {r}"
        assert beam.score == pytest.approx(out.sequences_scores[r].item(), abs=1e-4)
    return ours


@pytest.mark.parametrize("num_beams, length_penalty, use_eos, repetition_penalty",
                         [(4, 1.0, False, 1.0), (3, 1.0, True, 1.0), (5, 2.0, True, 1.0), (4, -0.5, True, 1.0),
                          (4, 1.0, True, 1.5)])
def test_beam_search_matches_transformers(num_beams, length_penalty, use_eos, repetition_penalty):
    pytest.importorskip("transformers")
    model = tiny(seed=1)
    prompt = [7, 3, 9, 1]
    eos = None
    if use_eos:  # a token the beams are likely to produce, so that some finish early
        eos = int(model(torch.tensor([prompt]))[0, -1].topk(2).indices[1])
    cfg = DecodeConfig(max_new_tokens=12, num_beams=num_beams, length_penalty=length_penalty, eos_id=eos,
                       repetition_penalty=repetition_penalty)
    ours = assert_beams_are_transformers(model, load_twin().to_gpt2(model), prompt, cfg, num_return=2)
    assert any(b.ended_by_eos for b in ours) == use_eos, "the EOS cases should exercise finished beams"


def test_every_beam_matches_transformers_when_eos_is_likely():
    """All num_beams returned beams, over 72 small searches where EOS is the first or second choice after the
    prompt, so beams finish at every step. Each rule of the docstring decides some of them: considering k
    extensions instead of 2k, letting all 2k finish, running k-1 beams, or judging the stop at the next length
    each changed 1 to 34 of them; the five settings above, two beams each, let all four through."""
    pytest.importorskip("transformers")
    twin, prompt, finished_early = load_twin(), [1, 2, 3], 0
    for seed, vocab in itertools.product((0, 1), (6, 12)):
        torch.manual_seed(seed)
        model = build_model(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=32), vocab).eval()
        with torch.no_grad():
            model.tok_emb.weight.mul_(15)
        hf = twin.to_gpt2(model)
        ranked = model(torch.tensor([prompt]))[0, -1].argsort(descending=True).tolist()
        for num_beams, length_penalty, eos in itertools.product((2, 3, 5), (1.0, -0.5, 2.0), ranked[:2]):
            cfg = DecodeConfig(max_new_tokens=8, num_beams=num_beams, length_penalty=length_penalty, eos_id=eos)
            ours = assert_beams_are_transformers(model, hf, prompt, cfg, num_return=num_beams)
            finished_early += any(b.ended_by_eos for b in ours)
    assert finished_early > 50
