"""`lmforge tokenizer train|inspect`, `lmforge prepare`, and `lmforge train` on their output."""

import json

import pytest

from lmforge.cli import main
from test_cli import assert_one_line_error, run_cli

DOCS = [f"Speech {i}. Fellow-Citizens of the Senate and House of Representatives: the state of the union is "
        f"{['strong', 'sound', 'improving'][i % 3]}. We thank you, number {i}.\n" * 3 for i in range(40)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("speeches")
    for i, doc in enumerate(DOCS):
        (path / f"{i:02d}.txt").write_text(doc)
    return path


@pytest.fixture(scope="module")
def bpe_file(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "bpe.json"
    assert main(["tokenizer", "train", "--kind", "bpe", "--data", str(folder), "--vocab-size", "300",
                 "--out", str(out)]) == 0
    return out


def test_tokenizer_train_and_inspect(capsys, folder, bpe_file, tmp_path):
    code, out, _ = run_cli(capsys, "tokenizer", "inspect", bpe_file, "--data", folder / "01.txt", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["kind"] == "bpe" and report["vocab_size"] <= 300 and report["unknown_rate"] == 0
    assert report["bytes"] == len(DOCS[1].encode()) and 0 < report["tokens_per_byte"] < 1
    assert report["embedding_params"]["384"] == report["vocab_size"] * 384
    assert len(report["longest"]) == 10 and report["frequent"][0]["count"] >= report["frequent"][-1]["count"]
    code, out, _ = run_cli(capsys, "tokenizer", "train", "--kind", "word", "--data", folder, "--vocab-size", "20",
                           "--out", tmp_path / "word.json")
    assert code == 0 and "word tokenizer: 20 tokens" in out
    code, out, _ = run_cli(capsys, "tokenizer", "inspect", tmp_path / "word.json", "--data", folder, "--top", "3")
    assert code == 0 and "unknown rate" in out and "coverage" in out and "most frequent" in out
    code, out, _ = run_cli(capsys, "tokenizer", "train", "--kind", "char", "--unknown", "bytes", "--data", folder,
                           "--out", tmp_path / "new" / "char.json")  # a folder not made yet is made
    assert code == 0 and "eos=" in out and (tmp_path / "new" / "char.json").is_file()


def test_prepare_then_train_on_the_shards(capsys, folder, bpe_file, tmp_path):
    prep = tmp_path / "prep"
    code, out, _ = run_cli(capsys, "prepare", "--data", folder, "--tokenizer", bpe_file, "--out", prep,
                           "--workers", "2", "--val-fraction", "0.2", "--no-progress")
    assert code == 0 and "prepared 40 documents" in out and "MB/s" in out
    index = json.loads((prep / "index.json").read_text())
    assert index["tokenizer_kind"] == "bpe" and index["splits"]["val"]["documents"] > 0
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--preset", "tiny", "--data", prep, "--out", run,
                             "--model.block_size", "16", "--train.max_steps", "2", "--train.eval_interval", "2")
    assert code == 0, err
    assert json.loads((run / "tokenizer.json").read_text())["type"] == "bpe"
    assert "tokenizer: bpe" in (run / "config.yaml").read_text()
    code, out, _ = run_cli(capsys, "sample", run, "--prompt", "Fellow", "--max-new-tokens", "5", "--seed", "1")
    assert code == 0 and out.startswith("Fellow")


def test_train_on_whole_documents_padded(capsys, folder, bpe_file, tmp_path, small_text_file):
    prep = tmp_path / "prep"
    assert run_cli(capsys, "prepare", "--data", folder, "--tokenizer", bpe_file, "--out", prep, "--no-progress")[0] == 0
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--data", prep, "--out", run, "--data.batches",
                           "documents", "--model.block_size", "32", "--train.max_steps", "30", "--train.eval_interval",
                           "15", "--train.lr", "3e-3")
    assert code == 0, err
    assert "batches: documents" in (run / "config.yaml").read_text()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["event"] == "train"]
    assert losses[-1] < losses[0] - 0.5  # it learns from padded documents
    # a plain text file has no document ends to pad to: one line that names the fix
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--data", small_text_file, "--out", tmp_path / "r2",
                           "--data.batches", "documents")
    assert_one_line_error(code, err, "--data.batches documents", "lmforge prepare")


def test_document_batches_resume_exactly(capsys, folder, bpe_file, tmp_path):
    """The feed draws with the run's generator, which checkpoints hold: a crashed run resumes bitwise."""
    import torch

    from lmforge.config import Config
    from lmforge.training import Trainer

    prep = tmp_path / "prep"
    assert run_cli(capsys, "prepare", "--data", folder, "--tokenizer", bpe_file, "--out", prep, "--no-progress")[0] == 0

    def cfg():
        return Config.from_preset("tiny").updated({
            "data": {"path": str(prep), "batches": "documents"}, "model.block_size": 32, "sample.max_new_tokens": 0,
            "train": {"tensorboard": False, "max_steps": 6, "eval_interval": 3, "checkpoint_interval": 3}})

    Trainer(cfg(), tmp_path / "ref").fit()
    crashed = Trainer(cfg(), tmp_path / "run")
    real_step = crashed.train_step

    def step_then_crash():
        if crashed.step == 4:
            raise KeyboardInterrupt  # fit stops there and keeps the checkpoint of step 3
        return real_step()

    crashed.train_step = step_then_crash
    crashed.fit()
    resumed = Trainer(cfg(), tmp_path / "run", resume=True)
    assert resumed.step in (3, 4)
    resumed.fit()
    final = "checkpoints/step-00000006.pt"  # the last step's whole state, not the best model (which may be older)
    ref, got = (torch.load(tmp_path / run / final, weights_only=True)["model"] for run in ("ref", "run"))
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)


def test_document_feed_rows_stay_inside_one_document():
    import numpy as np
    import torch

    from lmforge.data.batches import IGNORE_INDEX, DocumentFeed

    eos = 0
    ids = np.array([5, 6, 7, eos, 8, 9, eos, 1, 2, 3, 4, 5, 6, 7, 8, 9, eos], dtype=np.uint16)
    feed = DocumentFeed(ids, eos, batch_size=64, block_size=4, generator=torch.Generator().manual_seed(0))
    x, y = feed.next_batch()
    assert x.shape == y.shape == (64, 4)
    text = ids.tolist()
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        n = sum(t != IGNORE_INDEX for t in row_y)  # real positions come first: right padding
        assert row_y[n:] == [IGNORE_INDEX] * (4 - n)
        real = row_x[:n] + row_y[n - 1 : n]
        assert eos not in real[:-1]  # an EOS only ends a row, never sits inside one
        assert any(text[i : i + len(real)] == real for i in range(len(text)))  # a stretch of the split itself


def test_train_with_a_word_tokenizer_from_the_command_line(capsys, small_text_file, tmp_path):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--data", small_text_file, "--out", run,
                           "--tokenizer", "word", "--vocab-size", "20", "--model.block_size", "8",
                           "--train.max_steps", "2", "--train.eval_interval", "2")
    assert code == 0, err
    tok = json.loads((run / "tokenizer.json").read_text())
    assert tok["type"] == "word" and len(tok["words"]) + len(tok["specials"]) == 20


@pytest.mark.parametrize("args, fragments", [
    (["tokenizer"], ["tokenizer train", "tokenizer inspect"]),
    (["tokenizer", "train", "--data", "x", "--out", "y"], ["required: --kind"]),
    (["tokenizer", "train", "--kind", "bep", "--data", "{folder}", "--out", "{tmp}/t.json"], ["did you mean 'bpe'"]),
    (["tokenizer", "train", "--kind", "char", "--vocab-size", "10", "--data", "{folder}", "--out", "{tmp}/t.json"],
     ["--vocab-size does not apply"]),
    (["tokenizer", "train", "--kind", "char", "--unknown", "bytes", "--vocab-size", "10", "--data", "{folder}",
      "--out", "{tmp}/t.json"], ["--vocab-size does not apply"]),
    (["tokenizer", "train", "--kind", "word", "--unknown", "bytes", "--data", "{folder}", "--out", "{tmp}/t.json"],
     ["--unknown applies to --kind char"]),
    (["tokenizer", "train", "--kind", "bpe", "--vocab-size", "100", "--data", "{folder}", "--out", "{tmp}/t.json"],
     ["--vocab-size 100", "at least 258"]),
    (["tokenizer", "train", "--kind", "bpe", "--data", "{blank}", "--out", "{tmp}/t.json"], ["--data", "holds no text"]),
    (["tokenizer", "train", "--kind", "word", "--data", "{blank}", "--out", "{tmp}/t.json"], ["--data", "holds no text"]),
    (["tokenizer", "train", "--kind", "char", "--data", "{folder}", "--out", "{folder}"], ["--out", "is a folder"]),
    (["tokenizer", "train", "--kind", "char", "--data", "{folder}", "--out", "{folder}/00.txt/t.json"],
     ["--out", "cannot make its folder"]),
    (["tokenizer", "inspect", "{tmp}/none.json", "--data", "{folder}"], ["FILE", "not a kind"]),
    (["tokenizer", "inspect", "{tmp}/none.json"], ["required: --data"]),
    (["prepare", "--data", "{folder}", "--tokenizer", "bpe"], ["required: --out"]),
    (["prepare", "--data", "{tmp}/nope", "--tokenizer", "bpe", "--out", "{tmp}/p"], ["--data", "does not exist"]),
    (["prepare", "--data", "{folder}", "--tokenizer", "bpee", "--out", "{tmp}/p"], ["--tokenizer 'bpee'", "'bpe'"]),
    (["prepare", "--data", "{folder}/00.txt", "--tokenizer", "char", "--out", "{tmp}/p", "--separator", "@@@"],
     ["single document", "--separator"]),
    (["prepare", "--data", "{folder}", "--tokenizer", "char", "--out", "{tmp}/p", "--separator", "\\"],
     ["--separator", "broken escape"]),
    (["train", "--preset", "tiny", "--tokenizer", "sentencepiece"], ["--tokenizer (--data.tokenizer) must be one of char, word, bpe"]),
    (["train", "--preset", "tiny", "--tokenizer", "char", "--vocab-size", "50"], ["--vocab-size", "does not apply"]),
    (["train", "--preset", "tiny", "--tokenizer", "bpe", "--vocab-size", "-3"], ["--vocab-size", "must be greater than or equal to 0, not -3"]),
])
def test_bad_input_gives_one_line(capsys, folder, tmp_path, args, fragments):
    (tmp_path / "blank.txt").write_text(" \n\n  \n")
    args = [a.format(folder=folder, tmp=tmp_path, blank=tmp_path / "blank.txt") for a in args]
    code, _, err = run_cli(capsys, *args)
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "t.json").exists() and not list(folder.parent.glob("*.tmp"))


def test_help_has_examples(capsys):
    for command in (["prepare"], ["tokenizer", "train"], ["tokenizer", "inspect"]):
        with pytest.raises(SystemExit) as exc:
            main([*command, "--help"])
        assert exc.value.code == 0
        assert "examples:" in capsys.readouterr().out
