"""The command line: the happy path end to end, and one clear line for each kind of bad input."""

import json
import math
import subprocess
import sys

import pytest
import torch

from lmforge.cli import main


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "error:" in lines[0], err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_train_writes_a_complete_run_directory(tiny_run):
    for name in ("config.yaml", "tokenizer.json", "model.safetensors", "metrics.jsonl", "curves.png", "samples.txt"):
        assert (tiny_run / name).is_file(), name
    records = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["event"] == "eval"]
    assert [r["step"] for r in evals] == [5, 10]
    for r in evals:
        assert {"step", "elapsed_s", "tokens_seen", "train_loss", "val_loss", "val_ppl", "val_bpb", "lr"} <= r.keys()
        assert r["val_ppl"] == pytest.approx(2.718281828 ** r["val_loss"], rel=1e-6)
    assert evals[0]["tokens_seen"] == 5 * 8 * 32
    assert evals[1]["elapsed_s"] >= evals[0]["elapsed_s"] > 0  # since process start: see the next test


# A fresh process that sleeps before it imports lmforge, then trains through main(), noting the wall-clock time at
# which each metrics record is written.
ELAPSED_CHILD = """
import json, sys, time
t0 = time.time()  # the script's first line: the process started at most interpreter start-up before this
time.sleep(float(sys.argv[1]))
from lmforge.training import logs as metrics
written, write = [], metrics.MetricsLog.write
def noting(self, event, **values):
    written.append((values.get("elapsed_s"), time.time() - t0))
    return write(self, event, **values)
metrics.MetricsLog.write = noting
from lmforge.cli import main
assert main(sys.argv[2:]) == 0
print(json.dumps([w for w in written if w[0] is not None]))
"""


def test_elapsed_s_counts_from_process_start(tmp_path, small_text_file):
    """DESIGN: `elapsed_s` is seconds since the process started, so it includes the start-up before any of
    lmforge runs (here a sleep before lmforge is even imported): not since the import, the run or the loop."""
    sleep = 0.5
    done = subprocess.run(
        [sys.executable, "-c", ELAPSED_CHILD, str(sleep), "train", "--preset", "tiny", "--data", str(small_text_file),
         "--out", str(tmp_path / "run"), "--train.max_steps", "2", "--train.eval_interval", "2",
         "--sample.max_new_tokens", "0"], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    written = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(written) >= 3  # start, eval, end at least
    for elapsed, since_t0 in written:
        # at least the time since the script's first line (the sleep included), at most that plus start-up
        assert since_t0 - 0.05 <= elapsed <= since_t0 + 1.0, written
        assert elapsed >= sleep


def test_sample_is_reproducible_with_a_seed(capsys, tiny_run):
    _, first, _ = run_cli(capsys, "sample", tiny_run, "--prompt", "Speak", "--max-new-tokens", 30, "--seed", 3)
    _, second, _ = run_cli(capsys, "sample", tiny_run, "--prompt", "Speak", "--max-new-tokens", 30, "--seed", 3)
    assert first == second and first.startswith("Speak") and len(first.rstrip("\n")) == 35


def test_greedy_equals_top_k_1_and_stream_prints_the_same(capsys, tiny_run):
    _, greedy, _ = run_cli(capsys, "sample", tiny_run, "--prompt", "All", "--max-new-tokens", 20, "--greedy")
    _, topk1, _ = run_cli(capsys, "sample", tiny_run, "--prompt", "All", "--max-new-tokens", 20, "--top-k", 1, "--seed", 5)
    _, stream, _ = run_cli(capsys, "sample", tiny_run, "--prompt", "All", "--max-new-tokens", 20, "--greedy", "--stream")
    assert greedy == topk1 == stream


def test_eval_json_reports_loss_perplexity_and_bits_per_byte(capsys, tiny_run, small_text_file):
    code, out, _ = run_cli(capsys, "eval", tiny_run, "--data", small_text_file, "--json")
    assert code == 0
    result = json.loads(out)
    text = small_text_file.read_text()
    assert result["tokens"] == len(text) - 1
    assert result["perplexity"] == pytest.approx(2.718281828 ** result["loss"], rel=1e-6)
    scored_bytes = len(text.encode()) - len(text[0].encode())  # every byte but the first character's is predicted
    assert result["bytes"] == scored_bytes
    assert result["bits_per_byte"] == pytest.approx(result["loss"] * result["tokens"] / math.log(2) / scored_bytes,
                                                    rel=1e-6)


def test_api_load_and_generate(tiny_run):
    import torch

    import lmforge

    run = lmforge.load(tiny_run)
    ids = run.tokenizer.encode("All:")
    assert run.model(torch.tensor([ids])).shape == (1, 4, run.tokenizer.vocab_size)
    text = run.generate("All:", max_new_tokens=10, temperature=0.8, top_p=0.95, seed=0)
    assert text.startswith("All:") and len(text) == 14


@pytest.mark.parametrize(
    "content, fragments",
    [(b"", ["is empty", "--data"]), (b"\x00\x01\x02binary", ["looks binary"]), (b"\xff\xfe bad", ["not UTF-8", "iconv"]),
     (b"short text", ["fewer than the context", "--model.block_size"])],
)
def test_bad_data_gives_one_line(capsys, tmp_path, content, fragments):
    data = tmp_path / "data.txt"
    data.write_bytes(content)
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--data", data, "--out", tmp_path / "run")
    assert_one_line_error(code, err, *fragments)


def test_missing_data_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--data", tmp_path / "nope.txt")
    assert_one_line_error(code, err, "does not exist")


def test_unknown_preset_and_key_suggest_the_nearest(capsys, small_text_file):
    code, _, err = run_cli(capsys, "train", "--preset", "tinny", "--data", small_text_file)
    assert_one_line_error(code, err, "unknown preset 'tinny'", "'tiny'")
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--train.max_step", "5", "--data", small_text_file)
    assert_one_line_error(code, err, "train.max_step", "did you mean 'train.max_steps'")


def test_absurd_value_names_the_flag(capsys, small_text_file):
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--model.n_head", "3", "--data", small_text_file)
    assert_one_line_error(code, err, "--model.n_embd", "--model.n_head")


def test_run_directory_without_a_model(capsys, tmp_path):
    code, _, err = run_cli(capsys, "sample", tmp_path)
    assert_one_line_error(code, err, "no config.yaml", "lmforge train --out")
    code, _, err = run_cli(capsys, "eval", tmp_path / "missing", "--data", tmp_path)
    assert_one_line_error(code, err, "does not exist")
    (tmp_path / "model.safetensors").write_bytes(b"")
    code, _, err = run_cli(capsys, "sample", tmp_path / "model.safetensors")
    assert_one_line_error(code, err, "is a file, not a run directory")


def test_corrupt_model_file_is_named(capsys, tmp_path, tiny_run):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    code, _, err = run_cli(capsys, "sample", broken)
    assert_one_line_error(code, err, "model.safetensors", "corrupt or truncated")


def test_an_empty_config_is_named_not_the_weights(capsys, tmp_path, tiny_run):
    """An emptied config.yaml would build the default model, which the weights do not fit: name the config."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    (broken / "config.yaml").write_text("# nothing\n")
    code, _, err = run_cli(capsys, "sample", broken)
    assert_one_line_error(code, err, "config.yaml", "is empty")


def test_refuses_to_overwrite_a_finished_run(capsys, tiny_run, small_text_file):
    before = (tiny_run / "model.safetensors").read_bytes()
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--data", small_text_file, "--out", tiny_run)
    assert_one_line_error(code, err, "already holds a run")
    assert (tiny_run / "model.safetensors").read_bytes() == before


def test_refuses_an_out_that_is_a_file(capsys, tmp_path, small_text_file):
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--data", small_text_file, "--out", out)
    assert_one_line_error(code, err, "--out", "is a file")
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("error", [
    MemoryError("Unable to allocate 24.6 GiB for an array with shape (100000000, 33) and data type int64"),  # numpy
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried "
                 "to allocate 51539607552 bytes. Error code 12 (Cannot allocate memory)"),  # torch on the CPU
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 48.00 GiB"),
])
def test_running_out_of_memory_is_one_line(capsys, tmp_path, small_text_file, monkeypatch, error):
    from lmforge.data import batches

    def huge(*_):  # what --train.batch_size 100000000 or --model.n_embd 65536 raises, without taking the memory
        raise error

    monkeypatch.setattr(batches, "_windows", huge)
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--data", small_text_file, "--out", tmp_path / "run")
    last = err.strip().splitlines()[-1]  # after the "training a transformer ..." line
    assert code == 2 and "Traceback" not in err and last.startswith("lmforge train: error: out of memory ("), err
    assert str(error)[:40] in last and "a smaller batch" in last


def test_other_errors_keep_their_traceback(tmp_path, small_text_file, monkeypatch):
    """Only what the user can fix becomes one line; a bug in lmforge still shows where it is."""
    from lmforge.data import batches

    def bug(*_):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(batches, "_windows", bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["train", "--preset", "tiny", "--data", str(small_text_file), "--out", str(tmp_path / "run")])


@pytest.mark.parametrize("args", [
    ["study", "{run}", "--prompts", "sotu", "--samples", "1", "--max-new-tokens", "2"],
    ["compare", "{run}", "{run}", "--max-new-tokens", "2"],
    ["compare", "--families", "ngram", "--data", "{text}", "--seconds", "1"],
    ["sweep", "--preset", "tiny", "--data", "{text}", "--param", "train.lr=0.001", "--tokens", "100"],
    ["classify", "train", "{run}", "--data", "{labels}", "--epochs", "1"],
])
def test_an_out_that_is_a_file_is_one_line_before_any_work(capsys, tmp_path, tiny_run, small_text_file, args):
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"text": f"text {i}", "label": "ab"[i % 2]}) + "\n" for i in range(10)))
    args = [a.format(run=tiny_run, text=small_text_file, labels=labels) for a in args]
    code, _, err = run_cli(capsys, *args, "--out", out)
    assert_one_line_error(code, err, f"--out '{out}' is a file")
    assert out.read_text() == "keep me"


def test_console_script_runs_as_a_process(tmp_path, small_text_file):
    """The installed `lmforge` entry point, as a user runs it: exit codes and output."""
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "lmforge", "train", "--preset", "tiny", "--data", str(small_text_file), "--out", str(out),
         "--train.max_steps", "4", "--train.eval_interval", "4"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "val perplexity" in done.stdout and "--- sample ---" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "lmforge", "sample", str(tmp_path / "none")], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`lmforge presets | head -1`: stdout's reader is gone before lmforge writes (closed at once here)."""
    proc = subprocess.Popen([sys.executable, "-m", "lmforge", "presets"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141 and err == ""


def test_help_has_examples(capsys):
    for command in ("train", "sample", "eval"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        assert "examples:" in capsys.readouterr().out


@pytest.mark.parametrize("args, fragments", [
    (("classify", "train", "runs/x"), ("lmforge classify train", "required: --data, --out")),
    (("classify", "predict", "runs/x"), ("one of the arguments --data --text is required",)),
    (("classify", "predict", "runs/x", "--data", "a.jsonl", "--text", "t"), ("not allowed with argument",)),
    (("classify",), ("required: ACTION",)),
])
def test_argparse_requires_the_flags_each_command_needs(capsys, args, fragments):
    """Every required flag is declared to argparse, so a missing one is one line before anything loads."""
    code, _, err = run_cli(capsys, *args)
    assert_one_line_error(code, err, *fragments)


def test_presets_lists_each_with_what_it_is_for(capsys):
    from lmforge.config_files import preset_names

    code, out, _ = run_cli(capsys, "presets")
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == preset_names()
    described = dict(line.split(None, 1) for line in lines)
    assert described["tiny"].startswith("A model small enough to train in seconds")
    assert "laptop-class CPU" in described["shakespeare-char-cpu"] and "#" not in out


def test_an_old_run_config_with_model_vocab_size_loads_and_another_tokenizer_is_named(capsys, tmp_path, tiny_run):
    """config.yaml of older runs records model.vocab_size (now the tokenizer's alone): accepted. A tokenizer.json
    of another vocabulary no longer matches the weights: one line that says the files come from different runs."""
    import shutil

    import yaml

    import lmforge
    from lmforge.tokenizers import train_tokenizer

    old = tmp_path / "old"
    shutil.copytree(tiny_run, old)
    config = yaml.safe_load((old / "config.yaml").read_text())
    tokens = lmforge.load(old).tokenizer.vocab_size
    config["model"]["vocab_size"] = tokens
    (old / "config.yaml").write_text(yaml.safe_dump(config))
    assert lmforge.load(old).model.vocab_size == tokens
    train_tokenizer("char", "only a few letters").save(old / "tokenizer.json")
    code, _, err = run_cli(capsys, "sample", old)
    assert_one_line_error(code, err, "model.safetensors", "size mismatch for", "different runs")
