"""Exact resume: a run that crashes and resumes ends bitwise where an uninterrupted one does.

The fast tests crash in-process (an exception out of the loop, the Trainer thrown
away, a new one built with resume=True). The slow test kills real processes with
SIGKILL at random moments, including mid-checkpoint.
"""

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from training_helpers import assert_same_tensors, checkpoint_state, records

from lmforge.cli import main
from lmforge.errors import LmforgeError
from lmforge.training import Trainer


class Crash(Exception):
    pass


def crash_at(trainer: Trainer, step: int) -> None:
    """Make `trainer.fit()` die just before optimizer step `step + 1`, as a kill would."""
    original = trainer.train_step

    def train_step():
        if trainer.step == step:
            raise Crash
        return original()

    trainer.train_step = train_step


VARIANTS = {"adamw-fp32": ("adamw", "float32", {}), "muon-fp16": ("muon", "float16", {}),
            "dropout": ("adamw", "float32", {"model.dropout": 0.2}),  # each step draws from torch's global generator
            "rnn": ("adamw", "float32", {"model.family": "rnn"})}  # its feed carries each row's hidden state


@pytest.mark.parametrize("variant", VARIANTS)
def test_crash_and_resume_is_bitwise_identical(tmp_path, tiny_cfg, variant):
    optimizer, dtype, model = VARIANTS[variant]

    def cfg():  # checkpoints at 3, 6, 8 and evals at 5, 8: the crash after step 5's eval goes back to step 3
        return tiny_cfg(max_steps=8, eval_interval=5, checkpoint_interval=3, optimizer=optimizer, dtype=dtype,
                        tensorboard=variant == "adamw-fp32").updated(model)

    Trainer(cfg(), tmp_path / "ref").fit()
    trainer = Trainer(cfg(), tmp_path / "run")
    crash_at(trainer, 5)
    with pytest.raises(Crash):
        trainer.fit()
    assert [r["step"] for r in records(tmp_path / "run", "eval")] == [5]
    if variant == "adamw-fp32":
        # TensorBoard orders event files by name: creation second, host, pid, then a per-process counter that
        # sorts as text ("10" < "9"). A real resume is a later process; here, wait for the next second so the
        # resumed writer's file sorts after the crashed one's whatever the counter has reached in this process.
        time.sleep(1.1)
    resumed = Trainer(cfg(), tmp_path / "run", resume=True)
    assert resumed.step == 3
    resumed.fit()

    ref, run = checkpoint_state(tmp_path / "ref", 8), checkpoint_state(tmp_path / "run", 8)
    for key in ("model", "optimizers", "scaler", "rng"):
        assert_same_tensors(ref[key], run[key], key)
    assert_same_tensors(ref["trainer"]["batch_gen"], run["trainer"]["batch_gen"])
    assert [r["step"] for r in records(tmp_path / "run", "train")] == list(range(1, 9))
    assert [r["step"] for r in records(tmp_path / "run", "eval")] == [5, 8]
    ref_losses = [r["loss"] for r in records(tmp_path / "ref", "train")]
    assert [r["loss"] for r in records(tmp_path / "run", "train")] == ref_losses
    assert [r["event"] for r in records(tmp_path / "run")].count("end") == 1
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == (tmp_path / "ref" / "model.safetensors").read_bytes()
    if variant == "adamw-fp32":  # TensorBoard forgets the crashed process's steps 4 and 5 too
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
        events.Reload()
        assert [e.step for e in events.Scalars("train/loss")] == list(range(1, 9))
        assert [e.step for e in events.Scalars("eval/val_loss")] == [5, 8]


def test_resume_from_the_cli_continues_with_a_larger_max_steps(capsys, tmp_path, small_text_file):
    out = tmp_path / "run"
    common = ["--train.eval_interval", "4", "--train.decay_steps", "8", "--sample.max_new_tokens", "5",
              "--train.tensorboard", "false"]
    assert main(["train", "--preset", "tiny", "--data", str(small_text_file), "--out", str(out),
                 "--train.max_steps", "4", *common]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--train.max_steps", "8"]) == 0
    captured = capsys.readouterr()
    assert f"resuming {out} at step 4 of 8" in captured.err
    assert "val perplexity" in captured.out and "--- sample ---" in captured.out
    assert [r["step"] for r in records(out, "eval")] == [4, 8]
    assert [r["event"] for r in records(out)][:2] == ["start", "train"] and records(out, "resume")[0]["step"] == 4

    code = main(["train", "--resume", str(out)])  # max_steps is now 8 in config.yaml: nothing left to do
    assert code == 2 and "already trained to step 8" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, fragment",
    [(["--model.n_layer", "2"], "--model.n_layer cannot change when resuming"),
     (["--preset", "tiny"], "drop --preset"),
     (["--out", "elsewhere"], "drop --out")],
)
def test_resume_refuses_what_would_break_it(capsys, tiny_run, args, fragment):
    assert main(["train", "--resume", str(tiny_run), *args]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_resume_names_a_corrupt_checkpoint_in_one_line(capsys, tmp_path, tiny_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    newest = sorted((run / "checkpoints").glob("*.pt"))[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    assert main(["train", "--resume", str(run), "--train.max_steps", "20"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and newest.name in err and "truncated" in err


def test_resume_with_different_text_is_refused(tmp_path, tiny_cfg):
    cfg = tiny_cfg(max_steps=2, eval_interval=2)
    Trainer(cfg, tmp_path / "run").fit()
    other = tmp_path / "other.txt"
    other.write_text("A different text entirely, long enough for a context of thirty-two. " * 30)
    cfg = tiny_cfg(max_steps=4, eval_interval=2).updated({"data.path": str(other)})
    with pytest.raises(LmforgeError, match="resume with the same --data"):
        Trainer(cfg, tmp_path / "run", resume=True)


# ---------------------------------------------------------------------- kill -9


def _train_cmd(data: Path, out: Path, resume: bool) -> list[str]:
    if resume:
        return [sys.executable, "-m", "lmforge", "train", "--resume", str(out)]
    return [sys.executable, "-m", "lmforge", "train", "--preset", "tiny", "--data", str(data), "--out", str(out),
            "--train.max_steps", "40", "--train.eval_interval", "10", "--train.checkpoint_interval", "1",
            "--train.keep_checkpoints", "2", "--train.log_interval", "1", "--sample.max_new_tokens", "0",
            "--train.tensorboard", "false"]


def _env():
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _last_step(out: Path) -> int:
    try:
        lines = (out / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in lines if '"event": "train"' in line and line.endswith("}")]
    return max(steps, default=0)


def _seconds_per_step(out: Path) -> float:
    """A step's time in the run at `out`, checkpoint included (the median over its logged steps)."""
    lines = (out / "metrics.jsonl").read_text().splitlines()
    times = [json.loads(line)["elapsed_s"] for line in lines if '"event": "train"' in line]
    return statistics.median(b - a for a, b in zip(times, times[1:]))


@pytest.mark.slow
def test_kill_9_at_random_steps_then_resume_is_bitwise_identical(tmp_path, small_text_file):
    """Three SIGKILLs at random steps of a 40-step CPU run (checkpoint every step); the resumed run's final
    weights and optimizer state equal an uninterrupted run's, and metrics.jsonl has each step once."""
    ref = tmp_path / "ref"
    done = subprocess.run(_train_cmd(small_text_file, ref, False), env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    out, rng, kills = tmp_path / "run", random.Random(), 0
    step_s = _seconds_per_step(ref)
    for attempt in range(3):
        first = _last_step(out) + 2  # a step (and its checkpoint) after the last one logged, at least
        target = rng.randint(first, max(first, 10 + 10 * attempt))
        proc = subprocess.Popen(_train_cmd(small_text_file, out, resume=attempt > 0), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and _last_step(out) < target:
            time.sleep(0.002)
        if proc.poll() is None:
            time.sleep(rng.random() * step_s)  # land anywhere in a step, a checkpoint write included
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2
    done = subprocess.run(_train_cmd(small_text_file, out, True), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    a, b = checkpoint_state(ref, 40), checkpoint_state(out, 40)
    for key in ("model", "optimizers", "rng"):
        assert_same_tensors(a[key], b[key], key)
    assert [r["step"] for r in records(out, "train")] == list(range(1, 41))
    assert [r["step"] for r in records(out, "eval")] == [10, 20, 30, 40]


def test_resume_with_a_different_text_in_memory_is_refused_by_the_checkpoint(tmp_path, tiny_cfg, small_text_file):
    """A text passed to the Trainer has no prepared data folder to compare: the checkpoint's fingerprint catches it."""
    text = small_text_file.read_text()
    Trainer(tiny_cfg(max_steps=2, eval_interval=2), tmp_path / "run", text=text).fit()
    with pytest.raises(LmforgeError, match=r"differs from the one.*train tokens then.*resume with the same --data"):
        Trainer(tiny_cfg(max_steps=4, eval_interval=2), tmp_path / "run", text=text[:-40], resume=True)
