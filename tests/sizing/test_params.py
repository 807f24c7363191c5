"""Parameter counts by part equal what the built model holds, for every family and option."""

from __future__ import annotations

import itertools

import pytest
import torch

from lmforge.config import ModelConfig
from lmforge.models import build_model
from lmforge.sizing.params import ngram_bounds, ngram_fitted, parameter_parts, meta_model

V = 37
OPTIONS = {"tie_weights": [True, False], "positions": ["learned", "rope", "none"], "mlp": ["gelu", "swiglu", "relu2"],
           "norm": ["layernorm", "rmsnorm"], "bias": [False, True], "qk_norm": [False, True]}
GRID = [dict(zip(OPTIONS, values)) for values in itertools.product(*OPTIONS.values())]


def unique_numel(model) -> int:
    seen, total = set(), 0
    for _, p in model.named_parameters(remove_duplicate=False):
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def by_part(cfg: ModelConfig) -> tuple[dict[str, int], torch.nn.Module]:
    model = build_model(cfg, V)
    return {p.name: p.params for p in parameter_parts(meta_model(cfg, V))}, model


@pytest.mark.parametrize("options", GRID, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_transformer_parts_sum_to_the_built_model(options):
    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=24, block_size=16, **options)
    parts, model = by_part(cfg)
    assert "other" not in parts
    assert sum(parts.values()) == unique_numel(model)
    C = cfg.n_embd
    assert parts["token embedding"] == V * C
    assert parts.get("positions", 0) == (16 * C if options["positions"] == "learned" else 0)
    assert parts["output head"] == (0 if options["tie_weights"] else V * C)  # tied: counted once, in the embedding
    qkv_proj = 4 * C * C + (4 * C if options["bias"] else 0)
    assert parts["attention"] == 2 * qkv_proj


@pytest.mark.parametrize("cell,tied", list(itertools.product(["lstm", "gru", "elman"], [True, False])))
def test_rnn_parts_sum_to_the_built_model(cell, tied):
    cfg = ModelConfig(family="rnn", rnn_cell=cell, n_layer=2, n_embd=20, tie_weights=tied)
    parts, model = by_part(cfg)
    gates = {"lstm": 4, "gru": 3, "elman": 1}[cell]
    assert parts["recurrent cell"] == 2 * (2 * gates * 20 * 20 + 2 * gates * 20)
    assert sum(parts.values()) == unique_numel(model) and "other" not in parts


def test_lora_adapters_are_their_own_part():
    cfg = ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, lora_rank=4)
    parts, model = by_part(cfg)
    assert parts["LoRA adapters"] == sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) > 0
    assert sum(parts.values()) == unique_numel(model)


def test_ngram_bounds_by_hand():
    """V = 10 and 5 train tokens: at most 5 distinct 1-grams, 4 bigrams, 3 trigrams (T - k + 1), else V^k. (A bound
    of T k-grams, one too many per order, passed the older test.)"""
    assert ngram_bounds(3, 10, 5).entries == [(2, 5, 4), (3, 4, 3)]
    assert ngram_bounds(3, 10, None).entries == [(2, 10, 100), (3, 100, 1000)]
    assert ngram_bounds(2, 2, 1000).entries == [(2, 2, 4)]


def test_ngram_tables_bounded_before_fitting_and_exact_after(tiny_ngram_run):
    run, cfg, vocab, train_tokens = tiny_ngram_run
    bounds = ngram_bounds(cfg.ngram_order, vocab, train_tokens)
    fitted = ngram_fitted(run / "model.safetensors", cfg.ngram_order, vocab)
    model = build_model(cfg, vocab)
    from lmforge.training.run_dir import load_weights

    load_weights(model, run / "model.safetensors")
    for (k, h, e), level in zip(fitted.entries, model.levels):
        assert (h, e) == (len(level.contexts), len(level.next_ids))
    for (_, hb, eb), (_, h, e) in zip(bounds.entries, fitted.entries):
        assert h <= hb and e <= eb
    stored = sum(b.numel() for b in model.buffers())
    assert fitted.numbers == stored  # every number the model keeps, once
