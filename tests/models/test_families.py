"""Every family through the same doors: `lmforge train`, `sample`, `eval` and the Python API."""

import json
import math

import pytest
import torch

import lmforge
from lmforge.cli import main

FAMILIES = ["transformer", "rnn", "ngram"]


@pytest.mark.parametrize("family", FAMILIES)
def test_train_writes_a_run_that_sample_and_eval_read(capsys, family_runs, small_text_file, family):
    run_dir = family_runs[family]
    for name in ("config.yaml", "tokenizer.json", "model.safetensors", "metrics.jsonl", "curves.png"):
        assert (run_dir / name).is_file(), name
    assert main(["sample", str(run_dir), "--prompt", "All", "--max-new-tokens", "20", "--seed", "1"]) == 0
    first = capsys.readouterr().out
    assert main(["sample", str(run_dir), "--prompt", "All", "--max-new-tokens", "20", "--seed", "1", "--stream"]) == 0
    assert capsys.readouterr().out == first and first.startswith("All") and len(first.rstrip("\n")) == 23
    assert main(["eval", str(run_dir), "--data", str(small_text_file), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    text = small_text_file.read_text()
    assert result["tokens"] == len(text) - 1 and result["bytes"] == len(text.encode()) - 1  # all but the first scored
    bits = result["loss"] * result["tokens"] / math.log(2)  # the text has no EOS: every target's loss counts
    assert result["bits_per_byte"] == pytest.approx(bits / result["bytes"], rel=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_python_api_gives_logits_for_every_family(family_runs, family):
    run = lmforge.load(family_runs[family])
    assert run.config.model.family == family
    ids = run.tokenizer.encode("All:")
    assert run.model(torch.tensor([ids])).shape == (1, 4, run.tokenizer.vocab_size)
    assert run.generate("All:", max_new_tokens=5, seed=0).startswith("All:")


def test_the_ngram_is_counted_once_and_beats_a_few_gradient_steps(family_runs):
    records = [json.loads(line) for line in (family_runs["ngram"] / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["event"] == "eval"]
    assert [r["step"] for r in evals] == [1]  # one counting pass, then one eval
    tiny = [json.loads(line) for line in (family_runs["transformer"] / "metrics.jsonl").read_text().splitlines()]
    assert evals[0]["val_loss"] < min(r["val_loss"] for r in tiny if r["event"] == "eval")


def test_the_rnn_trains_with_truncated_bptt(family_runs):
    records = [json.loads(line) for line in (family_runs["rnn"] / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["event"] == "eval"]
    assert [r["step"] for r in evals] == [5, 10] and evals[1]["val_loss"] < evals[0]["val_loss"]


def test_a_family_typo_names_the_flag(capsys, small_text_file):
    code = main(["train", "--preset", "tiny", "--data", str(small_text_file), "--model.family", "lstm"])
    err = capsys.readouterr().err
    assert code == 2 and "--model.family must be one of transformer, rnn, ngram" in err and "--model.rnn_cell" in err
