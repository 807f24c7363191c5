"""The n-gram model: a proper distribution everywhere, equal to Kneser-Ney written out by hand."""

import itertools
import math
import time
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch

from lmforge.config import ModelConfig
from lmforge.errors import LmforgeError
from lmforge.models import build_model
from lmforge.models.ngram import MIN_DISCOUNT, count_ngrams, kn_discounts
from lmforge.training.run_dir import load_weights, save_weights


def ngram(order: int, vocab_size: int, smoothing: str = "modified_kn", ids=None):
    model = build_model(ModelConfig(family="ngram", ngram_order=order, ngram_smoothing=smoothing), vocab_size)
    if ids is not None:
        model.fit_counts(np.asarray(ids))
    return model


def zipf_ids(n: int, vocab_size: int, seed: int = 0) -> np.ndarray:
    """A Markov-ish sequence with a skewed distribution, like text: counts of 1, 2, 3 and 4 all occur."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, vocab_size + 1)
    ids = rng.choice(vocab_size, size=n, p=weights / weights.sum())
    repeat = rng.random(n) < 0.3  # some tokens follow from the one before, so contexts matter
    ids[1:][repeat[1:]] = (ids[:-1][repeat[1:]] * 3 + 1) % vocab_size
    return ids


# ---------------------------------------------------------------------- a reference written with dicts


def reference_kn(ids, order, vocab_size, modified=True):
    """P(w | h) by the textbook recursion, with Python dicts: slow, plain, independent of the NumPy code."""
    ids = [int(i) for i in ids]
    L = len(ids)
    counts = {order: Counter(tuple(ids[i : i + order]) for i in range(L - order + 1))}
    for k in range(order - 1, 0, -1):  # continuation counts: distinct left neighbours (the first order-1 tokens are context only)
        left = defaultdict(set)
        for i in range(order - k, L - k + 1):
            left[tuple(ids[i : i + k])].add(ids[i - 1])
        counts[k] = Counter({gram: len(before) for gram, before in left.items()})

    discounts = {}
    for k, table in counts.items():
        n = [sum(1 for c in table.values() if c == r) for r in (1, 2, 3, 4)]
        y = n[0] / (n[0] + 2 * n[1]) if n[0] and n[1] else 0.5
        if modified:
            d = [1 - 2 * y * (n[1] / n[0] if n[0] else 0), 2 - 3 * y * (n[2] / n[1] if n[1] else 0),
                 3 - 4 * y * (n[3] / n[2] if n[2] else 0)]
        else:
            d = [y, y, y]
        discounts[k] = [min(max(x, MIN_DISCOUNT), r) for x, r in zip(d, (1, 2, 3))]

    def D(k, c):
        return discounts[k][min(c, 3) - 1]

    def prob(w, h):
        k = len(h) + 1
        lower = 1 / vocab_size if k == 1 else prob(w, h[1:])
        table = counts[k]
        follow = {gram[-1]: c for gram, c in table.items() if gram[:-1] == h}
        total = sum(follow.values())
        if total == 0:
            return lower
        gamma = sum(D(k, c) for c in follow.values()) / total
        c = follow.get(w, 0)
        return (max(c - D(k, c), 0) if c else 0) / total + gamma * lower

    return prob


@pytest.mark.parametrize("order, smoothing", [(1, "modified_kn"), (2, "modified_kn"), (3, "modified_kn"),
                                              (4, "modified_kn"), (3, "kn")])
def test_matches_kneser_ney_written_out_by_hand(order, smoothing):
    V = 6
    ids = zipf_ids(400, V)
    model = ngram(order, V, smoothing, ids)
    prob = reference_kn(ids, order, V, modified=smoothing == "modified_kn")
    x = torch.from_numpy(zipf_ids(12, V, seed=1)).view(1, -1)
    got = model.probs(x)[0]  # (T, V)
    for t in range(x.shape[1]):
        h = tuple(int(i) for i in x[0, max(0, t - order + 2) : t + 1]) if order > 1 else ()
        want = [prob(w, h) for w in range(V)]
        assert np.allclose(got[t].numpy(), want, atol=1e-12), (t, h)


def test_positions_computed_in_chunks_match_the_reference(monkeypatch):
    """A long batch is computed a few positions at a time; every chunk must read its own contexts."""
    import lmforge.models.ngram as ngram_module

    V = 6
    ids = zipf_ids(400, V)
    model = ngram(3, V, ids=ids)
    monkeypatch.setattr(ngram_module, "CHUNK_VALUES", 5 * V)  # 5 positions per chunk: 24 positions make 5 chunks
    prob = reference_kn(ids, 3, V)
    x = torch.from_numpy(zipf_ids(24, V, seed=2)).view(2, 12)
    got = model.probs(x)
    for b, t in itertools.product(range(2), range(12)):
        h = tuple(int(i) for i in x[b, max(0, t - 1) : t + 1])
        assert np.allclose(got[b, t].numpy(), [prob(w, h) for w in range(V)], atol=1e-12), (b, t)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
@pytest.mark.parametrize("smoothing", ["modified_kn", "kn"])
def test_every_context_gets_a_proper_positive_distribution(order, smoothing):
    V = 50
    ids = zipf_ids(3000, 40)  # tokens 40..49 never occur in training
    model = ngram(order, V, smoothing, ids)
    rng = np.random.default_rng(2)
    seen = torch.from_numpy(ids[:400].astype(np.int64)).view(8, 50)
    unseen = torch.from_numpy(rng.integers(0, V, (8, 50)))  # mostly contexts never seen in training
    for x in (seen, unseen):
        p = model.probs(x)
        assert (p > 0).all()
        assert (p.sum(-1) - 1).abs().max() < 1e-6
        q = torch.softmax(model(x), -1)  # the logits say the same
        assert (q.sum(-1) - 1).abs().max() < 1e-6 and (q > 0).all()
        assert torch.allclose(q.double(), p, atol=1e-6)


def test_an_unfitted_model_is_uniform():
    model = ngram(3, 7)
    assert torch.allclose(model.probs(torch.tensor([[1, 2, 3]])), torch.full((1, 3, 7), 1 / 7, dtype=torch.float64))


def test_a_predictable_text_is_predicted():
    ids = np.array([0, 1, 2, 3] * 500)
    model = ngram(3, 5, ids=ids)
    p = model.probs(torch.tensor([[0, 1, 2, 3]]))[0]
    for t, nxt in enumerate([2, 3, 0]):
        assert p[t + 1, nxt] > 0.99  # after "0 1" comes 2, after "1 2" comes 3, ...
    assert p[1:, 4].max() < 0.01  # token 4 never occurs: small but positive mass
    assert p[:, 4].min() > 0


def test_counts_are_raw_at_the_top_and_continuations_below():
    ids = np.array([0, 1, 0, 1, 2, 1])  # bigrams: 01 ×2, 10, 12, 21
    (uni_keys, uni_counts), (bi_keys, bi_counts) = count_ngrams(ids, 2, 3)
    assert dict(zip(bi_keys.tolist(), bi_counts.tolist())) == {0 * 3 + 1: 2, 1 * 3 + 0: 1, 1 * 3 + 2: 1, 2 * 3 + 1: 1}
    # token 1 follows 0 and 2 (two distinct left neighbours); 0 follows 1; 2 follows 1
    assert dict(zip(uni_keys.tolist(), uni_counts.tolist())) == {0: 1, 1: 2, 2: 1}


def test_discounts_by_hand_with_their_floor_and_their_small_text_guess():
    # n1..n4 = 4, 2, 1, 1: Y = 4 / (4 + 2·2) = 0.5; D1 = 1 - 2·0.5·2/4, D2 = 2 - 3·0.5·1/2, D3 = 3 - 4·0.5·1/1
    assert kn_discounts(np.array([1, 1, 1, 1, 2, 2, 3, 4, 9]), modified=True).tolist() == [0.5, 1.25, 1.0]
    # n1..n4 = 1, 1, 5, 0: Y = 1/3, D2 = 2 - 3·(1/3)·5 = -3, floored so no backoff weight can reach zero
    d = kn_discounts(np.array([1, 2, 3, 3, 3, 3, 3]), modified=True)
    assert d[1] == MIN_DISCOUNT > 0 and d.tolist() == pytest.approx([1 / 3, MIN_DISCOUNT, 3.0])
    # no count of 2: Y cannot be estimated, and plain KN takes 0.5 for every count
    assert kn_discounts(np.array([1, 1, 3]), modified=False).tolist() == [0.5, 0.5, 0.5]


def test_saved_and_loaded_like_any_model(tmp_path):
    ids = zipf_ids(3000, 20)
    model = ngram(4, 20, ids=ids)
    save_weights(model, tmp_path / "model.safetensors")
    fresh = ngram(4, 20)  # empty tables: the saved ones have other shapes
    load_weights(fresh, tmp_path / "model.safetensors")
    x = torch.from_numpy(zipf_ids(64, 20, seed=3)).view(2, 32)
    assert torch.equal(fresh(x), model(x))
    assert fresh.num_params() == model.num_params() > 20


def test_step_uses_the_last_n_minus_1_tokens():
    model = ngram(3, 10, ids=zipf_ids(2000, 10))
    ids = torch.tensor([[4, 1, 7, 2, 9]])
    logits, state = model.step(ids)
    assert state.tolist() == [[2, 9]]
    assert torch.allclose(logits, model(ids)[:, -1])
    logits, state = model.step(torch.tensor([[3]]), state)
    assert state.tolist() == [[9, 3]] and torch.allclose(logits, model(torch.tensor([[9, 3]]))[:, -1])


def test_an_order_beyond_64_bit_keys_names_the_flag():
    with pytest.raises(LmforgeError, match="--model.ngram_order 4 or less"):
        ngram(5, 50_000)


@pytest.mark.slow
def test_a_4_gram_counts_the_whole_builtin_corpus_within_a_minute():
    from lmforge.corpus import builtin_corpus
    from lmforge.tokenizers import train_tokenizer

    text = builtin_corpus()
    tokenizer = train_tokenizer("char", text)
    ids = tokenizer.encode_array(text)
    model = ngram(4, tokenizer.vocab_size)
    start = time.perf_counter()
    model.fit_counts(ids)
    seconds = time.perf_counter() - start
    assert seconds < 60, f"{seconds:.1f} s"
    x = torch.from_numpy(ids[-4096:].astype(np.int64)).view(32, 128)
    loss = -torch.log_softmax(model(x[:, :-1]), -1).gather(-1, x[:, 1:, None]).mean().item()
    assert loss < math.log(tokenizer.vocab_size) / 2  # far better than uniform
