"""A process that dies at the worst moments of a write resumes to exactly the uninterrupted run.

Each test trains in a forked child that ends itself with `os._exit` (no cleanup, no
flushing, no `finally`: what a kill leaves) at one chosen point, checks that the
torn state is really on disk, resumes in a second child to the end, and compares
with an uninterrupted run: the final checkpoint's model, optimizer, scaler and RNG
state bitwise, metrics.jsonl with every line whole and each train and eval step
once, samples.txt byte for byte, and the same checkpoint files left behind.

The run: 10 steps, evals (with a sample) at 4, 8 and 10, checkpoints at 3, 6, 9
and 10, the newest two kept.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import traceback
from pathlib import Path

import pytest
from training_helpers import assert_same_tensors, checkpoint_state, records

from lmforge.config import Config
from lmforge.training import checkpoint, logs
from lmforge.training.logs import MetricsLog, read_metrics
from lmforge.training.trainer import Trainer

CRASHED = 77  # the exit status of a child that ended itself at its crash point
MAX_STEPS, EVALS = 10, [4, 8, 10]
HEADER = re.compile(r"^=== step (\d+) ", re.MULTILINE)


def make_cfg(data: Path, dtype: str) -> Config:
    train = dict(max_steps=MAX_STEPS, eval_interval=4, checkpoint_interval=3, keep_checkpoints=2, log_interval=1,
                 tensorboard=False, dtype=dtype, optimizer="muon" if dtype == "float16" else "adamw")
    return Config.from_preset("tiny").updated({"data.path": str(data), "sample.max_new_tokens": 16, "train": train})


# ---------------------------------------------------------------------- crash points (armed in the child)


def _tear_checkpoint_file(step: int, limit: int) -> None:
    """Die with only the first `limit` bytes of checkpoint `step`'s .pt in its temporary file."""
    original = checkpoint.atomic_write

    def atomic_write(path, write):
        if path.name != f"step-{step:08d}.pt":
            return original(path, write)

        def torn(tmp):
            write(tmp)
            os.truncate(tmp, limit)  # what a kill mid-write leaves: a prefix
            os._exit(CRASHED)

        return original(path, torn)

    checkpoint.atomic_write = atomic_write


def _die_after_checkpoint_rename(step: int) -> None:
    """Die once checkpoint `step`'s .pt is renamed into place, before its .json (the commit mark) is written."""
    original = checkpoint.atomic_write

    def atomic_write(path, write):
        original(path, write)
        if path.name == f"step-{step:08d}.pt":
            os._exit(CRASHED)

    checkpoint.atomic_write = atomic_write


def _tear_metrics_line(step: int) -> None:
    """Die with the first half of step `step`'s train record flushed to metrics.jsonl, no newline."""
    original = MetricsLog.write

    def write(self, event, **values):
        if event == "train" and values.get("step") == step:
            line = json.dumps({"event": event, **values}) + "\n"
            self.file.write(line[: len(line) // 2])
            self.file.flush()
            os._exit(CRASHED)
        return original(self, event, **values)

    MetricsLog.write = write


def _tear_sample(step: int, keep: int) -> None:
    """Die with samples.txt's temporary file cut `keep` characters into step `step`'s section."""
    original, marker = logs.atomic_write, f"=== step {step} "

    def atomic_write(path, write):
        if path.name != "samples.txt":
            return original(path, write)

        def torn(tmp):
            write(tmp)
            with open(tmp, encoding="utf-8", newline="") as f:
                text = f.read()
            at = text.find(marker)
            if at >= 0:
                with open(tmp, "w", encoding="utf-8", newline="") as f:
                    f.write(text[: at + keep])
                os._exit(CRASHED)

        return original(path, torn)

    logs.atomic_write = atomic_write


def _run_in_child(cfg: Config, out: Path, resume: bool, arm=None) -> int:
    """Train in a forked child (arming its crash point first); returns the child's exit status.

    The optimizers import torch._dynamo on first use (seconds): imported here once, the children inherit it.
    """
    import torch._dynamo  # noqa: F401

    def target():
        try:
            logs.draw_curves = lambda records, path: None  # curves.png is not compared: skip matplotlib
            if arm is not None:
                arm()
            Trainer(cfg, out, resume=resume).fit()
        except BaseException:  # noqa: BLE001 - report and fail; the parent sees the status
            traceback.print_exc()
            os._exit(1)
        os._exit(0)

    child = multiprocessing.get_context("fork").Process(target=target)
    child.start()
    child.join(120)
    if child.exitcode is None:
        child.kill()
        child.join()
    return child.exitcode


# ---------------------------------------------------------------------- the reference and the comparison


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_text_file):
    """One uninterrupted run per dtype, trained (in a child, like the runs it is compared with) on first use."""
    runs: dict[str, Path] = {}

    def get(dtype: str) -> Path:
        if dtype not in runs:
            out = tmp_path_factory.mktemp("crash-ref") / dtype
            assert _run_in_child(make_cfg(small_text_file, dtype), out, resume=False) == 0
            if dtype == "float16":  # the scaler is live on this CPU, so its state is part of what is compared
                assert checkpoint_state(out, MAX_STEPS)["scaler"]["scale"] > 0
            runs[dtype] = out
        return runs[dtype]

    return get


def _comparable(record: dict) -> dict:
    """A record without its timings, which differ between any two runs."""
    return {k: v for k, v in record.items() if k not in ("elapsed_s", "tokens_per_s", "mfu")}


def assert_same_end(ref: Path, run: Path) -> None:
    a, b = checkpoint_state(ref, MAX_STEPS), checkpoint_state(run, MAX_STEPS)
    for key in ("model", "optimizers", "scaler", "rng"):
        assert_same_tensors(a[key], b[key], key)
    assert_same_tensors(a["trainer"]["batch_gen"], b["trainer"]["batch_gen"], "batch_gen")
    assert_same_tensors(a["trainer"]["sample_gen"], b["trainer"]["sample_gen"], "sample_gen")
    assert (run / "model.safetensors").read_bytes() == (ref / "model.safetensors").read_bytes()

    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "", "metrics.jsonl does not end with a whole line"
    for line in lines[:-1]:
        json.loads(line)  # every line whole
    assert [r["step"] for r in records(run, "train")] == list(range(1, MAX_STEPS + 1))
    assert [r["step"] for r in records(run, "eval")] == EVALS
    assert [r["event"] for r in records(run)].count("end") == 1
    for event in ("train", "eval", "end"):
        assert [_comparable(r) for r in records(run, event)] == [_comparable(r) for r in records(ref, event)], event

    samples = (run / "samples.txt").read_text(encoding="utf-8")
    assert [int(s) for s in HEADER.findall(samples)] == EVALS
    assert samples == (ref / "samples.txt").read_text(encoding="utf-8")
    assert not list(run.glob("*.tmp"))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == sorted(
        p.name for p in (ref / "checkpoints").iterdir())


DTYPES = ["float32", "float16"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_killed_mid_checkpoint_write(tmp_path, small_text_file, reference, dtype):
    ref, run, cfg = reference(dtype), tmp_path / "run", make_cfg(small_text_file, dtype)
    half = (ref / "checkpoints" / "step-00000010.pt").stat().st_size // 2

    def arm():
        _tear_checkpoint_file(6, half)

    assert _run_in_child(cfg, run, resume=False, arm=arm) == CRASHED
    torn = run / "checkpoints" / "step-00000006.pt.tmp"
    assert torn.is_file() and 0 < torn.stat().st_size <= half
    assert not (run / "checkpoints" / "step-00000006.pt").exists()
    assert [s for s, _ in checkpoint.list_checkpoints(run)] == [3]
    assert _run_in_child(cfg, run, resume=True) == 0
    assert records(run, "resume")[0]["step"] == 3
    assert_same_end(ref, run)


@pytest.mark.parametrize("dtype", DTYPES)
def test_killed_between_checkpoint_rename_and_its_json(tmp_path, small_text_file, reference, dtype):
    ref, run, cfg = reference(dtype), tmp_path / "run", make_cfg(small_text_file, dtype)
    assert _run_in_child(cfg, run, resume=False, arm=lambda: _die_after_checkpoint_rename(6)) == CRASHED
    assert (run / "checkpoints" / "step-00000006.pt").is_file()
    assert not (run / "checkpoints" / "step-00000006.json").exists()
    assert [s for s, _ in checkpoint.list_checkpoints(run)] == [3]
    assert _run_in_child(cfg, run, resume=True) == 0
    assert records(run, "resume")[0]["step"] == 3
    assert_same_end(ref, run)


@pytest.mark.parametrize("dtype", DTYPES)
def test_killed_mid_metrics_line(tmp_path, small_text_file, reference, dtype):
    ref, run, cfg = reference(dtype), tmp_path / "run", make_cfg(small_text_file, dtype)
    assert _run_in_child(cfg, run, resume=False, arm=lambda: _tear_metrics_line(5)) == CRASHED
    text = (run / "metrics.jsonl").read_text(encoding="utf-8")
    torn = text.rsplit("\n", 1)[-1]
    assert torn.startswith('{"event": "train", "step": 5') and not torn.endswith("}")
    # what `lmforge report` and `compare` read before anyone resumes: the records up to the torn one
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl") if r["event"] == "train"] == [1, 2, 3, 4]
    assert "=== step 4 " in (run / "samples.txt").read_text(encoding="utf-8")  # an eval the resume must forget
    assert _run_in_child(cfg, run, resume=True) == 0
    assert records(run, "resume")[0]["step"] == 3
    assert_same_end(ref, run)


@pytest.mark.parametrize("keep", [6, 40])
def test_killed_mid_sample(tmp_path, small_text_file, reference, keep):
    """A torn samples.txt section, cut inside its header (6 characters) or inside its text (40)."""
    ref, run, cfg = reference("float32"), tmp_path / "run", make_cfg(small_text_file, "float32")
    assert _run_in_child(cfg, run, resume=False, arm=lambda: _tear_sample(8, keep)) == CRASHED
    assert [s for s, _ in checkpoint.list_checkpoints(run)] == [3, 6]
    assert _run_in_child(cfg, run, resume=True) == 0
    assert records(run, "resume")[0]["step"] == 6
    assert_same_end(ref, run)
