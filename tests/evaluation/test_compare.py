"""`lmforge compare`: runs side by side on the same val text, and families trained for the same budget."""

import json
import re

import pytest

from lmforge.cli import main
from lmforge.errors import LmforgeError
from lmforge.evaluation import compare


def table_rows(markdown: str) -> dict[str, list[str]]:
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 8 and cells[0] not in ("run",) and not cells[0].startswith("---"):
            rows[cells[0]] = cells
    return rows


def test_compare_run_dirs_scores_each_on_the_same_val_text(capsys, tmp_path, family_runs, small_text_file):
    out = tmp_path / "cmp"
    families = ("transformer", "rnn", "ngram")
    runs = [family_runs[f] for f in families]
    assert main(["compare", *map(str, runs), "--out", str(out), "--max-new-tokens", "30"]) == 0
    capsys.readouterr()
    md = (out / "comparison.md").read_text()
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = table_rows(md)
    assert set(rows) == {r.name for r in runs}
    val = compare.val_text_of(small_text_file.read_text(), 0.1)
    val_file = tmp_path / "val.txt"
    val_file.write_text(val)
    for run, want_family in zip(runs, families):
        name, family, _, params, seconds, loss, ppl, bpb = rows[run.name]
        assert family == want_family
        assert int(params.replace(",", "")) > 0 and float(seconds) > 0
        main(["eval", str(run), "--data", str(val_file), "--json"])  # the same numbers as `lmforge eval` on the val text
        expected = json.loads(capsys.readouterr().out)
        assert float(loss) == pytest.approx(expected["loss"], abs=1e-4)
        assert float(bpb) == pytest.approx(expected["bits_per_byte"], abs=1e-4)
        assert f"### {run.name} ({family})" in md
    ranked = re.search(r"lowest first: (.*)\.", md).group(1).split(" < ")
    assert [float(rows[name][7]) for name in ranked] == sorted(float(rows[name][7]) for name in ranked)


def test_families_train_for_the_same_budget(tmp_path, small_text_file, monkeypatch):
    """The time budget stops each neural family: planned for three budgets' worth of steps, every run must still end
    when its budget is up (not before): its last eval within one step and one eval of it, its end after a checkpoint."""
    def tiny_family_config(family, data, seconds, device="auto"):
        return original(family, data, seconds, device).updated({
            "model": {"n_layer": 1, "n_embd": 16, "n_head": 2, "block_size": 16},
            "train": {"batch_size": 8, "eval_train_tokens": 512}})

    original = compare.family_config
    monkeypatch.setattr(compare, "family_config", tiny_family_config)
    monkeypatch.setattr(compare, "BUDGET_MARGIN", 3.0)  # max_steps far past the budget: only the clock can stop it
    budget = 1.0
    runs = compare.train_families(["ngram", "rnn", "transformer"], str(small_text_file), budget, tmp_path,
                                  log=lambda _: None)
    assert [r.name for r in runs] == ["ngram", "rnn", "transformer"]
    for run in runs:
        seconds, curve = compare.training_seconds(run)
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        end = next(r for r in records if r["event"] == "end")
        if run.name == "ngram":  # counted in one pass, well inside the budget
            assert curve and seconds < budget and end["reason"] == "counted"
            continue
        assert end["reason"] == "max_seconds" and end["step"] > 1, end
        assert budget <= curve[-1][0] <= budget + 0.3, (run.name, curve)  # measured: 0.01-0.06 s after the budget
        assert seconds <= budget + 0.75, (run.name, seconds)  # measured: 0.07-0.35 s after it (with the checkpoint)


def test_families_must_be_known_and_distinct():
    assert compare.parse_families("ngram, rnn,transformer") == ["ngram", "rnn", "transformer"]
    with pytest.raises(LmforgeError, match="--families takes a comma-separated list"):
        compare.parse_families("ngram,lstm")
    with pytest.raises(LmforgeError, match="twice"):
        compare.parse_families("rnn,rnn")


@pytest.mark.parametrize("args, fragment", [([], "either run directories"), (["RUN", "--families", "rnn"], "not both"),
                                            (["--families", "rnn", "--seconds", "0"], "--seconds must be positive")])
def test_bad_compare_arguments_give_one_line(capsys, tmp_path, args, fragment):
    args = [str(tmp_path) if a == "RUN" else a for a in args]
    assert main(["compare", *args]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_runs_on_different_texts_need_data(capsys, tmp_path, family_runs):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(family_runs["rnn"], other)
    config = (other / "config.yaml").read_text()
    (other / "config.yaml").write_text(re.sub(r"path: .*", "path: elsewhere.txt", config, count=1))
    assert main(["compare", str(family_runs["ngram"]), str(other), "--out", str(tmp_path / "cmp")]) == 2
    assert "pass --data PATH" in capsys.readouterr().err


@pytest.mark.slow
def test_compare_families_end_to_end(capsys, tmp_path, small_text_file):
    out = tmp_path / "cmp"
    assert main(["compare", "--families", "ngram,rnn,transformer", "--data", str(small_text_file), "--seconds", "3",
                 "--out", str(out), "--max-new-tokens", "20"]) == 0
    rows = table_rows((out / "comparison.md").read_text())
    assert set(rows) == {"ngram", "rnn", "transformer"}


def test_compare_and_eval_give_the_same_numbers_for_the_same_model_and_text(tmp_path, small_text_file, family_runs):
    """One function scores both: same loss, bytes and bits per byte, for a word run (unknown words) and an RNN."""
    from lmforge.cli import main
    from lmforge.evaluation.compare import compare_runs, val_text_of
    import lmforge
    from lmforge.evaluation.perplexity import evaluate_run

    word = tmp_path / "word"
    assert main(["train", "--preset", "tiny", "--data", str(small_text_file), "--out", str(word), "--data.tokenizer",
                 "word", "--train.max_steps", "2", "--train.eval_interval", "2", "--sample.max_new_tokens", "0"]) == 0
    text = val_text_of(small_text_file.read_text(encoding="utf-8"), 0.1) + " Zyzzyvas of Xanadu"
    (tmp_path / "val.txt").write_text(text, encoding="utf-8")
    for run_dir in (word, family_runs["rnn"]):
        [row] = compare_runs([run_dir], text, max_new_tokens=0)
        evaluated = evaluate_run(lmforge.load(run_dir), tmp_path / "val.txt")
        for key in ("loss", "tokens", "bytes", "bits_per_byte"):
            assert getattr(row.result, key) == evaluated[key], (run_dir.name, key)


def eval_result(loss, bits_per_byte):
    from lmforge.evaluation.perplexity import EvalResult

    return EvalResult(loss, 2.718281828459045 ** loss, bits_per_byte, 100, 120)


def test_runs_are_ranked_by_bits_per_byte_not_by_loss_per_token(tmp_path):
    """Loss per token favours a tokenizer with long tokens; bits per byte compares any two."""
    rows = [compare.Row(name, tmp_path, "transformer", "m", 1, 1.0, eval_result(loss, bpb), "", [])
            for name, loss, bpb in (("chars", 1.2, 1.7), ("words", 4.0, 1.5), ("bpe", 3.0, 1.9))]
    assert [r.name for r in compare.ranked(rows)] == ["words", "chars", "bpe"]


def test_the_schedule_fits_the_budget_with_room_for_the_evals(small_text_file, monkeypatch):
    """Steps timed at 0.25 s and an eval at 1.3 s: of 10 s, 90% is 9 s; two evals leave 6.4 s, so 25 steps,
    an eval every 13, warmup a tenth of them (2, below the preset's 50), and no decay phase."""
    import timeit

    def timed(stmt, number=1):
        return 1.3 if getattr(stmt, "__name__", "") == "evaluate" else 0.25

    cfg = compare.family_config("transformer", str(small_text_file), 10).updated({
        "model": {"n_layer": 1, "n_embd": 16, "n_head": 2, "block_size": 16}, "train": {"batch_size": 2}})
    monkeypatch.setattr(timeit, "timeit", timed)
    fitted, plan = compare.fit_schedule_to_budget(cfg, small_text_file.read_text(), 10)
    assert plan == {"step_s": 0.25, "eval_s": 1.3, "max_steps": 25}
    train = fitted.train
    assert (train.max_steps, train.eval_interval, train.warmup_steps, train.decay_steps) == (25, 13, 2, 0)


@pytest.mark.parametrize("seconds, text", [(0.0, "0.0"), (0.0123, "0.012"), (0.5, "0.5"), (1.0, "1.0"),
                                           (12.34, "12.3")])
def test_training_seconds_keep_two_significant_digits_below_a_second(seconds, text):
    assert compare.seconds_text(seconds) == text


def test_two_runs_of_the_same_name_are_told_apart_by_their_paths(tmp_path, tiny_run):
    import shutil

    dirs = [tmp_path / "a" / "tiny", tmp_path / "b" / "tiny"]
    for d in dirs:
        shutil.copytree(tiny_run, d)
    rows = compare.compare_runs(dirs, "First Citizen: speak, speak.", max_new_tokens=0)
    assert [r.name for r in rows] == [str(d) for d in dirs]


def test_families_are_scored_on_the_last_tenth_of_the_text(tmp_path, small_text_file, monkeypatch):
    """What `--families` trained on 90% of; training and scoring are stubbed: only the val text is looked at."""
    scored = []
    monkeypatch.setattr(compare, "train_families", lambda names, data, *a, **k: [tmp_path / n for n in names])
    monkeypatch.setattr(compare, "compare_runs", lambda dirs, val, *a, **k: scored.append(val) or [])
    monkeypatch.setattr(compare, "write_comparison", lambda rows, out, about: (out / "c.md", out / "c.png"))
    compare.run_comparison([], "ngram", str(small_text_file), 1.0, tmp_path, log=lambda _: None)
    text = small_text_file.read_text()
    [val] = scored
    assert text.endswith(val) and 0.1 * len(text) - 1 < len(val) < 0.1 * len(text) + 64  # the cut moves back a word at most


def test_val_of_one_text_is_its_last_part_and_of_a_prepared_folder_its_val_documents(tmp_path):
    """As training drew them: a prepared directory's documents are re-read from its inputs, with its own seed."""
    from lmforge.data.inputs import in_val
    from lmforge.data.prepare import PrepareOptions, prepare
    from lmforge.tokenizers import train_tokenizer

    (tmp_path / "one.txt").write_text("aaa bbb ccc ddd eee fff ggg hhh iii jjj")  # 39 characters, the mark at 35
    assert compare.val_of(str(tmp_path / "one.txt"), 0.1) == " jjj"
    docs = [f"document number {i}" for i in range(20)]
    (tmp_path / "docs").mkdir()
    for i, doc in enumerate(docs):
        (tmp_path / "docs" / f"{i:02d}.txt").write_text(doc)
    tok = train_tokenizer("char", docs, documents=True)
    prepare(tmp_path / "docs", tok, tmp_path / "prep", PrepareOptions(seed=3, val_fraction=0.3, workers=1,
                                                                      progress=False))
    assert compare.val_of(str(tmp_path / "prep"), 0.1) == [d for i, d in enumerate(docs) if in_val(3, i, 0.3)]
