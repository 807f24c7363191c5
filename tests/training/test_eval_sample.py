"""`train.eval_tokens`: cheap evals on a fixed sample of the val split, then the best model on the whole split."""

import math

import numpy as np
import pytest
import torch
from training_helpers import records

from lmforge.config import Config
from lmforge.errors import LmforgeError
from lmforge.evaluation.report import build_report
from lmforge.evaluation.perplexity import evaluate_ids, token_nats
from lmforge.tokenizers.base import ScoredBytes
from lmforge.training import Trainer
from lmforge.training.evals import STRETCHES, evaluate_val, train_loss, val_stretches


def test_a_sample_is_stretches_spread_over_the_whole_split():
    stretches = val_stretches(100_000, 4096, 64)
    assert len(stretches) == STRETCHES
    assert all(end - begin - 1 == 4096 // STRETCHES for begin, end in stretches)  # scored tokens per stretch
    assert stretches[0][0] == 0 and stretches[-1][1] == 100_000  # from the split's start to its end
    gaps = np.diff([begin for begin, _ in stretches])
    assert gaps.max() - gaps.min() <= 1  # evenly spread
    assert len(val_stretches(100_000, 100, 64)) == 1  # fewer stretches than a window each: one
    assert val_stretches(100_000, 0, 64) is None and val_stretches(1000, 999, 64) is None  # the whole split


def test_the_sample_is_scored_as_its_stretches_would_be(tmp_path, tiny_cfg):
    trainer = Trainer(tiny_cfg(), tmp_path / "run")
    stretches = val_stretches(len(trainer.val_ids), 128, 32)
    assert len(stretches) == 4
    result = evaluate_val(trainer.model, trainer.tokenizer, trainer.val_ids, stretches, trainer.val_bytes, 32, 64,
                          torch.device("cpu"))
    nats = np.concatenate([token_nats(trainer.model, trainer.val_ids[b:e], 32) for b, e in stretches])
    assert result.tokens == len(nats) == 128
    assert result.loss == pytest.approx(nats.mean(), rel=1e-6)
    # ASCII text, one byte a character: bits per byte is the loss in bits
    assert result.bits_per_byte == pytest.approx(nats.mean() / math.log(2), rel=1e-6)
    two_bytes = ScoredBytes(2 * trainer.val_bytes.bytes)  # as if each character took two bytes: half the bits per byte
    doubled = evaluate_val(trainer.model, trainer.tokenizer, trainer.val_ids, stretches, two_bytes, 32, 64,
                           torch.device("cpu"))
    assert (doubled.bytes, doubled.bits_per_byte) == (256, pytest.approx(nats.mean() / math.log(2) / 2, rel=1e-6))
    whole = evaluate_val(trainer.model, trainer.tokenizer, trainer.val_ids, None, trainer.val_bytes, 32, 64,
                         torch.device("cpu"))
    expected = evaluate_ids(trainer.model, trainer.tokenizer, trainer.val_ids, 32, 64, torch.device("cpu"),
                            n_bytes=trainer.val_bytes)
    assert whole == expected and whole.tokens == len(trainer.val_ids) - 1


def test_evals_score_the_sample_and_the_run_ends_on_the_whole_split(tmp_path, tiny_cfg):
    result = Trainer(tiny_cfg(eval_tokens=128), tmp_path / "run").fit()
    evals = records(tmp_path / "run", "eval")
    assert len(evals) == 2 and all(r["val_tokens"] == 128 for r in evals)
    end = records(tmp_path / "run", "end")[-1]
    whole = end["whole_val"]
    assert whole["step"] == result.best_step and whole["val_tokens"] > 128
    assert (result.best_val_loss, result.best_val_bpb) == (whole["val_loss"], whole["val_bpb"])
    assert whole["val_loss"] != next(r["val_loss"] for r in evals if r["step"] == result.best_step)
    build_report(tmp_path / "run")
    page = (tmp_path / "run" / "report.md").read_text()
    assert f"best model (step {result.best_step}): val loss {whole['val_loss']:.4f}" in page
    assert "the evals scored 128 of them" in page


def test_without_a_sample_evals_score_the_whole_split_once_each(tmp_path, tiny_cfg):
    result = Trainer(tiny_cfg(), tmp_path / "run").fit()
    best = next(r for r in records(tmp_path / "run", "eval") if r["step"] == result.best_step)
    assert best["val_tokens"] > 128 and records(tmp_path / "run", "end")[-1]["whole_val"] is None
    assert result.best_val_loss == best["val_loss"]


def test_a_negative_sample_names_the_flag():
    with pytest.raises(LmforgeError, match="--train.eval_tokens"):
        Config().updated({"train.eval_tokens": -1})


@pytest.mark.parametrize("training", [True, False])
def test_train_loss_is_the_mean_over_its_windows_whatever_the_batch(tmp_path, tiny_cfg, training):
    """3 windows in batches of 1, 2 or 3 (the same windows: one generator, drawn in order): the same mean per token,
    not a mean of unequal batches' means; and the model is left in the mode it was in."""
    model = Trainer(tiny_cfg(), tmp_path / "run").model
    train_ids = np.random.default_rng(0).integers(0, 20, 500)
    model.train(training)
    losses = [train_loss(model, train_ids, 3 * 32, 32, batch, 5, torch.device("cpu")) for batch in (1, 2, 3)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-6) and losses[2] == pytest.approx(losses[0], rel=1e-6)
    assert model.training is training
