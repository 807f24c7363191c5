"""`lmforge size` and `lmforge train --dry-run`: the table, the warning with the setting that fits, one-line errors."""

from __future__ import annotations

import re

import pytest

from lmforge.cli import main
from lmforge.sizing import memory as memory_module


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *fragments):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_size_prints_parts_flops_memory_and_eval_cost(capsys, small_text_file):
    code, out, _ = run(capsys, "size", "--preset", "tiny", "--data", small_text_file, "--free-mib", 100000)
    assert code == 0
    for part in ("token embedding", "output head", "attention", "MLP", "norms", "non-embedding"):
        assert part in out
    assert "tied to the token embedding" in out
    assert "FLOPs per token: forward" in out and "optimizer state" in out and "activations" in out
    assert re.search(r"each eval scores the whole val split, [\d,]+ tokens", out)
    assert "fits:" in out and "warning" not in out


def test_the_warning_names_the_setting_that_fits(capsys, small_text_file):
    args = ("size", "--preset", "tiny", "--data", small_text_file, "--train.batch_size", 64,
            "--model.block_size", 256)
    _, out, _ = run(capsys, *args, "--free-mib", 100000)
    total = float(re.search(r"  total +([\d.,]+) MiB", out).group(1).replace(",", ""))
    _, out, _ = run(capsys, *args, "--free-mib", total * 0.6)  # activations dominate: micro-batches fit
    assert "warning: the estimate" in out and "--train.grad_accum 2 would fit it" in out
    _, out, _ = run(capsys, *args, "--free-mib", 0.01)  # nothing fits
    assert "warning: the estimate" in out and "a smaller model" in out


def test_the_warning_reads_the_device_free_memory(capsys, small_text_file, monkeypatch):
    monkeypatch.setattr(memory_module, "available_ram", lambda: 1_000_000)  # 1 MB of RAM left
    _, out, _ = run(capsys, "size", "--preset", "tiny", "--data", small_text_file, "--train.device", "cpu")
    assert "exceeds the 1.0 MiB free on CPU RAM" in out


def test_train_dry_run_prints_the_table_and_writes_nothing(capsys, small_text_file, tmp_path):
    out_dir = tmp_path / "never"
    code, out, _ = run(capsys, "train", "--preset", "tiny", "--data", small_text_file, "--out", out_dir, "--dry-run")
    assert code == 0 and "training memory" in out and not out_dir.exists()
    _, size_out, _ = run(capsys, "size", "--preset", "tiny", "--data", small_text_file)
    assert out.splitlines()[:-1] == size_out.splitlines()[:-1]  # the same table (the free memory moves)


def test_size_of_a_run_reads_its_vocabulary_and_speed(capsys, tiny_run):
    code, out, _ = run(capsys, "size", tiny_run, "--train.batch_size", 16)
    assert code == 0 and f"tokenizer of {tiny_run}" in out
    assert "at this run's measured training speed" in out


def test_size_of_each_family(capsys, small_text_file, tiny_ngram_run):
    _, out, _ = run(capsys, "size", "--data", small_text_file, "--model.family", "rnn", "--model.rnn_cell", "gru")
    assert "recurrent cell" in out and "GRU" in out
    _, out, _ = run(capsys, "size", "--data", small_text_file, "--model.family", "ngram")
    assert "no trained parameters: count tables, at most" in out and "32 bytes per train token" in out
    _, out, _ = run(capsys, "size", tiny_ngram_run[0])
    assert "count tables, as fitted" in out


@pytest.mark.parametrize("args,fragments", [
    (("--preset", "tinyy"), ("unknown preset 'tinyy'", "tiny")),
    (("--train.batch_sise", "8"), ("unknown config key 'train.batch_sise'", "train.batch_size")),
    (("--model.n_embd", "wide"), ("--model.n_embd",)),
    (("--config", "missing.yaml"), ("config file 'missing.yaml' does not exist",)),
    (("--processes", "3"), ("divisible",)),
    (("--processes", "0"), ("--processes must be at least 1, not 0",)),
    (("--free-mib", "nan"), ("--free-mib must be a finite number",)),
    (("--free-mib", "inf"), ("--free-mib must be a finite number",)),
    (("--free-mib=-5",), ("--free-mib must be a finite number of MiB, 0 or more, not -5.0",)),
])
def test_bad_input_gets_one_line(capsys, args, fragments):
    code, _, err = run(capsys, "size", *args)
    one_line_error(code, err, *fragments)


def test_a_folder_that_is_not_a_run_gets_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "size", tmp_path)
    one_line_error(code, err, "not a run directory")
    code, _, err = run(capsys, "size", tmp_path, "--preset", "tiny")
    one_line_error(code, err, "drop --preset")


def test_the_readme_shows_what_size_prints(capsys):
    """The reference's (docs/reference.md) `lmforge size` block is this code's output for the default preset (all but the free memory)."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "docs" / "reference.md").read_text(encoding="utf-8")
    shown = readme.split("$ lmforge size\n", 1)[1].split("```", 1)[0].splitlines()
    code, out, _ = run(capsys, "size", "--free-mib", 100000)
    assert code == 0 and out.splitlines()[:-1] == shown[:-1]


def test_size_takes_trains_data_flags(capsys):
    """`lmforge size` takes the flags `lmforge train` takes for the data (here --tokenizer and --vocab-size)."""
    code, out, err = run(capsys, "size", "--tokenizer", "bpe", "--vocab-size", 4096, "--free-mib", 100000)
    assert code == 0, err
    assert "vocabulary 4,096" in out


def test_the_hand_written_usage_names_every_flag():
    """`size` writes its usage by hand (RUN_DIR is optional and positional); a flag added must show in it."""
    from lmforge.cli import build_parser

    size = build_parser()._subparsers._group_actions[0].choices["size"]
    flags = [a.option_strings[-1] for a in size._actions if a.option_strings and a.dest != "help"]
    assert [f for f in flags if f not in size.usage] == []
