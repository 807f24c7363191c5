"""A language model as a classifier: it learns a separable task, reports honestly, and saves what trained."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lmforge.adapt.classify import Classifier, ClassifierSpec, build_classifier, encode_batch
from lmforge.adapt.classify_metrics import confusion, scores, table
from lmforge.cli import main


def examples(n, seed):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = [rng.choice(["speak", "die"]) for _ in range(rng.randint(1, 4))]
        rows.append({"text": " ".join(words), "label": words[-1]})  # only the end tells: the last token must be read
    return rows


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_metrics_by_hand():
    m = confusion(["a", "b", "c"], ["a", "a", "b", "b", "c"], ["a", "b", "b", "b", "a"])
    assert m.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    s = scores(m)
    assert s["accuracy"] == pytest.approx(3 / 5)
    assert s["precision"] == pytest.approx([0.5, 2 / 3, 0.0]) and s["recall"] == pytest.approx([0.5, 1.0, 0.0])
    report = table(["a", "b", "c"], m)
    assert "| c | 0.000 | 0.000 | 1 |" in report
    # the confusion matrix with the true label as the row (printed transposed, it passed)
    assert "| a | 1 | 1 | 0 |\n| b | 0 | 2 | 0 |\n| c | 1 | 0 | 0 |\n" in report


def test_scores_are_the_language_models_logits_at_the_last_real_token(tiny_run):
    """A head that copies the first K rows of the model's own output head scores each text as the model's logits at
    its last real token do: the hidden state is the head's input there, padding after it unread. (Reading the token
    before the last passed the older tests: on their texts any letter of the last word tells the label.)"""
    from lmforge.run import load

    run = load(tiny_run, device="cpu")
    clf = Classifier(run.model.eval(), 3)
    lm_head = run.model.output_head()
    with torch.no_grad():
        clf.head.weight.copy_(lm_head.weight[:3])
        clf.head.bias.copy_(lm_head.bias[:3] if lm_head.bias is not None else torch.zeros(3))
    ids, lengths = encode_batch(run.tokenizer, ["speak speak die", "die", "the end of it"], 64, torch.device("cpu"))
    with torch.no_grad():
        logits = run.model(ids)[torch.arange(3), lengths - 1, :3]
        assert torch.allclose(clf(ids, lengths), logits, atol=1e-5)


def test_texts_keep_their_first_tokens_and_an_empty_one_gets_id_0(tiny_run):
    """The char run has no EOS, so an empty text is [0]; rows are right-padded with 0."""
    from lmforge.run import load

    tok = load(tiny_run, device="cpu").tokenizer
    ids, lengths = encode_batch(tok, ["the end of it", "", "die"], 4, torch.device("cpu"))
    assert lengths.tolist() == [4, 1, 3]
    assert ids.tolist() == [tok.encode("the "), [0, 0, 0, 0], tok.encode("die") + [0]]


@pytest.mark.parametrize("mode", ["head", "lora", "full"])
def test_each_mode_trains_what_it_says(tiny_run, mode):
    """head: the head alone; lora: the head and the adapters of the targets asked for (here qkv only); full: every
    weight. (Leaving the body trainable in head mode, or adapting the default targets, passed the older tests.)"""
    run, clf = build_classifier(ClassifierSpec(str(tiny_run), ["a", "b"], mode=mode, lora_targets=["qkv"]), "cpu")
    trained = {n for n, p in clf.named_parameters() if p.requires_grad}
    adapters = {f"body.blocks.{i}.attn.qkv.lora_{m}" for i in range(run.config.model.n_layer) for m in "ab"}
    expected = {"head": {"head.weight", "head.bias"}, "lora": {"head.weight", "head.bias", *adapters},
                "full": {n for n, _ in clf.named_parameters()}}[mode]
    assert trained == expected


@pytest.mark.parametrize("mode", ["head", "lora", "full"])
def test_classify_train_and_predict(tmp_path, tiny_run, mode, capsys):
    train, test = write(tmp_path / "train.jsonl", examples(160, 0)), write(tmp_path / "test.jsonl", examples(60, 1))
    out = tmp_path / "clf"
    assert main(["classify", "train", str(tiny_run), "--data", str(train), "--test-data", str(test), "--out", str(out),
                 "--mode", mode, "--epochs", "4", "--lr", "0.01", "--device", "cpu"]) == 0
    result = json.loads((out / "scores.json").read_text())
    assert result["accuracy"] >= 0.95 and sum(result["support"]) == 60
    assert (out / "confusion.png").stat().st_size > 1000 and "| true \\ predicted | die | speak |" in (out / "report.md").read_text()
    saved = load_file(str(out / "classifier.safetensors"))
    if mode != "full":
        assert all(k.startswith("head.") or ".lora_" in k for k in saved)  # the frozen base is not copied
    assert any(".lora_" in k for k in saved) == (mode == "lora")
    capsys.readouterr()
    assert main(["classify", "predict", str(out), "--text", "speak speak die", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.strip() == "die"


def test_classify_refuses_bad_input(tmp_path, tiny_run, family_runs, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": "x"}\nnot json\n')
    one = write(tmp_path / "one.jsonl", [{"text": "a", "label": "x"}] * 3)
    good = write(tmp_path / "good.jsonl", examples(20, 0))
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(b'{"text": "caf\xe9", "label": "x"}\n')
    for argv, words in (([str(tiny_run), "--data", str(bad)], "line 2 is not a JSON object"),
                        ([str(tiny_run), "--data", str(one)], "at least two labels"),
                        ([str(family_runs["ngram"]), "--data", str(good)], "no hidden state"),
                        ([str(tiny_run), "--data", str(tmp_path / "nope.jsonl")], "does not exist"),
                        ([str(tiny_run), "--data", str(latin1)], "is not UTF-8"),
                        ([str(tiny_run), "--data", str(good), "--test-data", str(tmp_path / "nope.jsonl")],
                         "--test-data '"),
                        ([str(tiny_run), "--data", str(good), "--batch-size", "0"], "--batch-size must be at least 1"),
                        ([str(tiny_run), "--data", str(good), "--epochs", "0"], "--epochs and --batch-size"),
                        ([str(tiny_run), "--data", str(good), "--lr", "nan"], "--lr a positive number"),
                        ([str(tiny_run), "--data", str(good), "--lr", "-1"], "--lr a positive number")):
        assert main(["classify", "train", *argv, "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
        assert words in capsys.readouterr().err
    before = sorted(p.name for p in tiny_run.iterdir())
    assert main(["classify", "train", str(tiny_run), "--data", str(good), "--out", str(tiny_run), "--device", "cpu"]) == 2
    assert "holds a run" in capsys.readouterr().err and sorted(p.name for p in tiny_run.iterdir()) == before
    assert main(["classify", "train", str(tiny_run), "--data", str(good), "--out", str(tmp_path / "c"), "--epochs", "1",
                 "--device", "cpu"]) == 0
    capsys.readouterr()
    for data, words in ((tmp_path / "nope.jsonl", "does not exist"), (bad, "line 2 is not a JSON object with 'text'"),
                        (latin1, "is not UTF-8")):
        assert main(["classify", "predict", str(tmp_path / "c"), "--data", str(data)]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
    assert main(["classify", "predict", str(tmp_path), "--text", "x"]) == 2
    assert "holds no classifier.json" in capsys.readouterr().err
