"""One rule for input text: `train --data` takes whatever `prepare --data` takes, and splits it the same way."""

import json

import numpy as np
import pytest

from lmforge.cli import main
from lmforge.config import Config
from lmforge.data import PreparedData
from lmforge.data.inputs import Inputs, text_cut
from lmforge.data.training import load_training_data
from lmforge.errors import LmforgeError

LINES = [f"Speech {i}: the state of the union is {['strong', 'sound', 'improving'][i % 3]}, said speaker {i % 11}.\n"
         for i in range(400)]
TEXT = "".join(LINES)
TRAIN = ["--preset", "tiny", "--model.block_size", "16", "--train.max_steps", "2", "--train.eval_interval", "2",
         "--sample.max_new_tokens", "0", "--train.tensorboard", "false"]


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The same 400 lines as one text file, as a folder of 40 files, and as JSONL with the text under "body"."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "one.txt").write_text(TEXT, encoding="utf-8")
    (root / "docs").mkdir()
    for i in range(40):
        (root / "docs" / f"{i:02d}.txt").write_text("".join(LINES[i * 10 : (i + 1) * 10]), encoding="utf-8")
    (root / "docs.jsonl").write_text("".join(json.dumps({"id": i, "body": line}) + "\n" for i, line in enumerate(LINES)))
    return root


@pytest.mark.parametrize("data, flags, documents", [
    ("docs", [], 40),  # a folder
    ("docs/*.txt", [], 40),  # a glob
    ("docs.jsonl", ["--text-field", "body"], 400),  # JSONL, the text in a named field
])
def test_train_takes_a_folder_a_glob_and_jsonl_as_prepare_does(capsys, corpus, tmp_path, data, flags, documents):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--data", corpus / data, "--out", run, *TRAIN, *flags)
    assert code == 0, err
    index = json.loads((run / "data" / "index.json").read_text())  # prepared on the way, into RUN_DIR/data
    splits = index["splits"]
    assert index["source"] == str(corpus / data) and index["split"] == "hash"
    assert splits["train"]["documents"] + splits["val"]["documents"] == documents and splits["val"]["documents"] > 0
    prep = tmp_path / "prep"  # `prepare` of the same inputs, same tokenizer kind: the same ids
    assert run_cli(capsys, "prepare", "--data", corpus / data, "--tokenizer", "char", "--out", prep, "--no-progress",
                   *flags)[0] == 0
    for split in ("train", "val"):
        assert np.array_equal(PreparedData(run / "data").split(split), PreparedData(prep).split(split))
    if flags:
        assert "text_field: body" in (run / "config.yaml").read_text()


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_prepare_and_train_split_one_file_the_same_way(capsys, corpus, tmp_path, kind):
    """One file without --separator: its last 10% is val, in `prepare`, in `train --data` and for a text in memory."""
    vocab = [] if kind == "char" else ["--vocab-size", "300" if kind == "bpe" else "40"]
    run, prep = tmp_path / "run", tmp_path / "prep"
    assert run_cli(capsys, "train", "--data", corpus / "one.txt", "--out", run, "--tokenizer", kind, *vocab, *TRAIN)[0] == 0
    assert run_cli(capsys, "prepare", "--data", corpus / "one.txt", "--tokenizer", kind, *vocab, "--out", prep,
                   "--no-progress")[0] == 0
    trained, prepared = PreparedData(run / "data"), PreparedData(prep)
    assert prepared.index["split"] == "position" and trained.tokenizer.to_dict() == prepared.tokenizer.to_dict()
    cfg = Config.from_preset("tiny").updated({"data": {"tokenizer": kind, "vocab_size": int(vocab[1]) if vocab else 0}})
    in_memory = load_training_data(cfg, TEXT)  # the built-in corpus and Trainer(text=...) take this path
    assert in_memory.tokenizer.to_dict() == prepared.tokenizer.to_dict()
    for name, ids in (("train", in_memory.train_ids), ("val", in_memory.val_ids)):
        assert np.array_equal(trained.split(name), prepared.split(name)) and np.array_equal(prepared.split(name), ids)
    cut = text_cut(TEXT, 0.1)
    assert prepared.tokenizer.decode(prepared.split("val").tolist()) == TEXT[cut:] or kind == "word"
    assert 0.88 * len(TEXT) < cut <= 0.9 * len(TEXT)
    assert prepared.scored_bytes("val") == in_memory.val_bytes


def test_one_file_is_cut_where_the_text_in_memory_is_whatever_the_part_size(corpus):
    inputs = Inputs(corpus / "one.txt")
    for chunk in (7, 50, 1 << 20):
        pieces = list(inputs.pieces(chunk))
        train = "".join(text for s, _, text in pieces if s == "train")
        val = "".join(text for s, _, text in pieces if s == "val")
        assert train + val == TEXT and len(train) == text_cut(TEXT, 0.1)
        assert [begins for _, begins, _ in pieces].count(True) == 2
    assert inputs.val_documents() == [TEXT[text_cut(TEXT, 0.1) :]]


@pytest.mark.parametrize("chunk_bytes", [50, 300, 601, 1 << 20])  # at 601, a chunk begins right at the mark
def test_one_file_is_cut_at_its_last_safe_point_before_the_mark_whatever_its_chunks(tmp_path, monkeypatch,
                                                                                    chunk_bytes):
    """A 1,000-character file, its mark at 900, inside 700 x's: the cut goes back to the last word end, character
    299, which is byte 399 ('á' is two bytes)."""
    from lmforge.data import inputs
    from lmforge.data.sources import file_chunks

    text = "áb " * 100 + "x" * 700
    (tmp_path / "one.txt").write_text(text, encoding="utf-8")
    monkeypatch.setattr(inputs, "file_chunks", lambda files, *a, **k: file_chunks(files, *a, **{
        "chunk_bytes": chunk_bytes, **k}))
    assert Inputs(tmp_path / "one.txt").cut() == 399 and text_cut(text, 0.1) == 299


def test_empty_documents_take_no_number_in_the_val_draw(tmp_path):
    """Documents are numbered for `in_val` by the non-empty ones only, so an empty line shifts nothing."""
    from lmforge.data.inputs import in_val

    docs = [f"document {i}" for i in range(30)]
    lines = [{"text": d} for d in docs[:5]] + [{"text": ""}] + [{"text": d} for d in docs[5:]]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    expected = [d for i, d in enumerate(docs) if in_val(7, i, 0.3)]
    shifted = [d for i, d in enumerate(docs) if in_val(7, i + (i >= 5), 0.3)]  # had the empty one taken number 5
    assert expected != shifted
    assert Inputs(tmp_path / "d.jsonl", val_fraction=0.3, seed=7).val_documents() == expected


def test_a_file_too_short_to_split_is_refused(tmp_path):
    (tmp_path / "one.txt").write_text("x")  # the mark, int(0.9), is 0: no train part
    with pytest.raises(LmforgeError, match="too short to keep 0.1 of it for val \\(1 characters\\)"):
        Inputs(tmp_path / "one.txt").cut()


def test_word_val_bits_per_byte_charge_unknown_words_as_eval_does(capsys, corpus, tmp_path):
    """A word run's val bits per byte in metrics.jsonl: unknown words cost 8 bits a byte, as in `lmforge eval`."""
    import lmforge
    from lmforge.evaluation.compare import compare_runs, val_of
    from lmforge.evaluation.perplexity import evaluate_run

    text = TEXT + "".join(f"Zyzzyva{i} quux{i} xanadu{i}!\n" for i in range(60))  # unknown words, all in val
    (tmp_path / "words.txt").write_text(text, encoding="utf-8")
    (tmp_path / "folder").mkdir()
    for i in range(20):
        (tmp_path / "folder" / f"{i:02d}.txt").write_text(text[i * len(text) // 20 : (i + 1) * len(text) // 20])
    for data in (tmp_path / "words.txt", tmp_path / "folder"):
        run = tmp_path / f"run-{data.stem}"
        assert run_cli(capsys, "train", "--data", data, "--out", run, "--tokenizer", "word", "--vocab-size", "60",
                       *TRAIN)[0] == 0
        [record] = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
        index = json.loads((run / "data" / "index.json").read_text())
        assert index["splits"]["val"]["unknown_bytes"] > 0
        val = val_of(str(data), 0.1)
        if isinstance(val, str):  # one text: `lmforge eval` of its val part
            (tmp_path / "val.txt").write_text(val, encoding="utf-8")
            expected = evaluate_run(lmforge.load(run), tmp_path / "val.txt")["bits_per_byte"]
        else:  # documents: scored as prepared data lays them out
            expected = compare_runs([run], val, max_new_tokens=0)[0].result.bits_per_byte
        assert record["val_bpb"] == pytest.approx(expected, abs=1e-4)


def test_prepared_val_bytes_count_unknown_words_as_eval_counts_them(tmp_path):
    """Bytes and unknown-word bytes of a prepared split, the first token's left out even when it is unknown."""
    from lmforge.data.prepare import PrepareOptions, prepare
    from lmforge.evaluation.perplexity import documents_scored_bytes
    from lmforge.tokenizers import train_tokenizer

    docs = [f"Unheard{i} words{i} start every document, then the same words. " * 3 for i in range(30)]
    (tmp_path / "docs").mkdir()
    for i, doc in enumerate(docs):
        (tmp_path / "docs" / f"{i:02d}.txt").write_text(doc)
    tok = train_tokenizer("word", " then the same words. start every document,", 30, documents=True)
    prepare(tmp_path / "docs", tok, tmp_path / "prep", PrepareOptions(workers=1, progress=False, val_fraction=0.3))
    val = Inputs(tmp_path / "docs", val_fraction=0.3).val_documents()
    assert tok.encode(val[0])[0] == tok.specials["unk"]  # the split's first token is an unknown word
    expected = documents_scored_bytes(tok, val, tok.encode_array(val[0]))
    assert PreparedData(tmp_path / "prep").scored_bytes("val") == expected and expected.unknown > 0


def test_resume_reads_the_data_the_run_prepared(capsys, corpus, tmp_path, monkeypatch):
    from lmforge.data import training

    run = tmp_path / "run"
    assert run_cli(capsys, "train", "--data", corpus / "docs", "--out", run, *TRAIN)[0] == 0
    shard = run / "data" / "train-00000.bin"
    before = shard.stat().st_mtime_ns

    def refuse(*args, **kwargs):
        raise AssertionError("a resumed run must not prepare its data again")

    monkeypatch.setattr(training, "prepare_inputs", refuse)
    code, _, err = run_cli(capsys, "train", "--resume", run, "--train.max_steps", "4")
    assert code == 0, err
    assert shard.stat().st_mtime_ns == before


def test_compare_runs_trained_on_a_folder_scores_their_val_documents(capsys, corpus, tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run, kind in zip(runs, ("char", "bpe")):
        vocab = ["--vocab-size", "300"] if kind == "bpe" else []
        assert run_cli(capsys, "train", "--data", corpus / "docs", "--out", run, "--tokenizer", kind, *vocab,
                       *TRAIN)[0] == 0
    code, _, err = run_cli(capsys, "compare", *runs, "--out", tmp_path / "cmp", "--max-new-tokens", "0")
    assert code == 0, err
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "val documents of" in md
    for run in runs:  # each scores what its own training evals scored
        [record] = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
        row = next(line for line in md.splitlines() if line.startswith(f"| {run.name} |"))
        assert float(row.split("|")[-2]) == pytest.approx(record["val_bpb"], abs=1e-3)


@pytest.mark.parametrize("make, fragments", [
    (lambda root: root / "empty", ["folder", "holds no files", "put text or JSONL files in it"]),
    (lambda root: root / "nothing" / "*.txt", ["matches no files", "check the pattern"]),
    (lambda root: root / "latin1.txt", ["not UTF-8", "iconv"]),
    (lambda root: root / "blank.txt", ["is empty", "--data"]),
])
def test_bad_inputs_give_one_line_naming_the_fix(capsys, tmp_path, make, fragments):
    (tmp_path / "empty").mkdir()
    (tmp_path / "latin1.txt").write_bytes("Caf\u00e9 cr\u00e8me, ".encode("latin-1") * 100)
    (tmp_path / "blank.txt").write_text(" \n\n \n")
    code, _, err = run_cli(capsys, "train", "--data", make(tmp_path), "--out", tmp_path / "run", *TRAIN)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and "Traceback" not in err, err
    assert all(f in lines[0] for f in fragments), lines[0]
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.slow
def test_train_on_a_large_file_keeps_memory_bounded(tmp_path):
    """`train --data` on a 49 MB text file streams it into shards: peak RSS far below the 16 bytes a character
    (about 1.1 GB here) that encoding it in memory took. About 30 s on 2 cores."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "train_memory.py"
    spec = importlib.util.spec_from_file_location("train_memory", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    chars = bench.build(tmp_path / "big.txt", 48_000_000)
    gb, _, error = bench.peak([sys.executable, "-m", "lmforge", "train", "--data", str(tmp_path / "big.txt"),
                               "--out", str(tmp_path / "run"), *bench.TRAIN])
    assert not error and chars > 45_000_000
    assert gb < 0.7, f"peak RSS {gb:.2f} GB for {chars / 1e6:.0f} M characters"
