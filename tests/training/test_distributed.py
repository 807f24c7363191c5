"""Scale-out through torchrun: two gloo processes on the CPU compute what one process computes, and resume.

The torchrun tests start real process groups (about half a minute each on two
cores), so they are marked slow.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from training_helpers import checkpoint_state, records

from lmforge.errors import LmforgeError
from lmforge.training import Trainer, distributed

COMMON = ["--preset", "tiny", "--train.decay_steps", "8", "--train.eval_interval", "4", "--train.log_interval", "1",
          "--sample.max_new_tokens", "5", "--train.tensorboard", "false"]


def _env():
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def lmforge(*args: str, nproc: int = 1, probe: bool = False) -> subprocess.CompletedProcess:
    """`lmforge train ARGS` in `nproc` processes; `probe`: through torchrun_probe.py, which reports gloo's threads."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 \
        else [sys.executable]
    program = [str(Path(__file__).with_name("torchrun_probe.py"))] if probe else ["-m", "lmforge"]
    done = subprocess.run([*launcher, *program, "train", *args], env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


@pytest.fixture(scope="module")
def one_process_losses(tmp_path_factory, small_text_file):
    """The loss at each of 8 steps of one process with the same global batch (8 sequences)."""
    from lmforge.config import Config

    cfg = Config.from_preset("tiny").updated({
        "data": {"path": str(small_text_file)}, "sample": {"max_new_tokens": 5},
        "train": dict(max_steps=8, decay_steps=8, eval_interval=4, log_interval=1, tensorboard=False)})
    out = tmp_path_factory.mktemp("one") / "run"
    Trainer(cfg, out).fit()
    return [r["loss"] for r in records(out, "train")]


def train_losses(run: Path) -> list[float]:
    steps = [r["step"] for r in records(run, "train")]
    assert steps == list(range(1, len(steps) + 1)), steps  # each step once, none missing
    return [r["loss"] for r in records(run, "train")]


@pytest.mark.slow
def test_two_gloo_processes_match_one_and_resume(tmp_path, small_text_file, one_process_losses):
    run = tmp_path / "ddp"
    first = lmforge(*COMMON, "--data", str(small_text_file), "--out", str(run), "--train.max_steps", "4", nproc=2)
    assert first.stdout.count("run saved to") == 1  # rank 0 alone prints
    resumed = lmforge("--resume", str(run), "--train.max_steps", "8", nproc=2, probe=True)
    # the process group's threads end with training, not during interpreter shutdown, where a rank could abort
    # ("terminate called without an active exception", issue 13 defect 10)
    assert sorted(line for line in resumed.stdout.splitlines() if "gloo threads" in line) == \
        [f"rank {rank} gloo threads after training: []" for rank in (0, 1)]
    assert records(run, "start")[0]["world_size"] == 2
    assert train_losses(run) == pytest.approx(one_process_losses, abs=1e-5)


@pytest.mark.slow
def test_fsdp_across_two_processes_resumes_in_one(tmp_path, small_text_file, one_process_losses):
    """Checkpoints hold full state dicts, so a sharded run resumes with a different number of processes."""
    run = tmp_path / "fsdp"
    lmforge(*COMMON, "--data", str(small_text_file), "--out", str(run), "--train.max_steps", "4",
            "--train.parallel", "fsdp", nproc=2)
    lmforge("--resume", str(run), "--train.max_steps", "8")
    assert [r["world_size"] for r in records(run) if r["event"] in ("start", "resume")] == [2, 1]
    assert train_losses(run) == pytest.approx(one_process_losses, abs=1e-5)


@pytest.fixture(scope="module")
def prepared_documents(tmp_path_factory) -> Path:
    """A prepared directory of documents from 3 to 150 characters: padded batches whose rows hold very
    different numbers of real targets (context 32, so long documents are cut into rows)."""
    from lmforge.data.prepare import PrepareOptions, prepare
    from lmforge.tokenizers import train_tokenizer

    folder = tmp_path_factory.mktemp("docs")
    texts = [("To be, or not to be: that is the question. " * 4)[: 3 + (i * 37) % 148] for i in range(60)]
    for i, text in enumerate(texts):
        (folder / f"{i:02d}.txt").write_text(text)
    out = tmp_path_factory.mktemp("prepared") / "prep"
    prepare(folder, train_tokenizer("char", texts, documents=True), out, PrepareOptions(workers=1, progress=False))
    return out


@pytest.mark.slow
def test_two_gloo_processes_with_accumulation_match_one_on_padded_documents(tmp_path, prepared_documents):
    """2 ranks × 2 micro-batches of padded documents: the same step as one process with one micro-batch,
    since every real target weighs the same wherever it sits (issue 13, defect 1)."""
    from lmforge.config import Config

    args = ["--preset", "tiny", "--data", str(prepared_documents), "--data.batches", "documents",
            "--train.max_steps", "6", "--train.decay_steps", "6", "--train.eval_interval", "6",
            "--sample.max_new_tokens", "0", "--train.tensorboard", "false"]
    lmforge(*args, "--out", str(tmp_path / "ddp"), "--train.grad_accum", "2", nproc=2)
    cfg = Config.from_preset("tiny").updated({
        "data": {"path": str(prepared_documents), "batches": "documents"}, "sample": {"max_new_tokens": 0},
        "train": dict(max_steps=6, decay_steps=6, eval_interval=6, tensorboard=False)})
    Trainer(cfg, tmp_path / "one").fit()
    one, ddp = (checkpoint_state(tmp_path / run, 6)["model"] for run in ("one", "ddp"))
    assert one.keys() == ddp.keys()
    for name in one:
        assert one[name].dtype == torch.float32
        assert (one[name] - ddp[name]).abs().max().item() < 1e-5, name
    assert [r["tokens_seen"] for r in records(tmp_path / "ddp", "train")] == \
        [r["tokens_seen"] for r in records(tmp_path / "one", "train")]


# ---------------------------------------------------------------------- one process: the helpers do nothing


def test_without_torchrun_there_is_one_process(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    info = distributed.from_env()
    assert (info.rank, info.world_size, info.enabled, info.is_main) == (0, 1, False, True)
    assert float(distributed.total(torch.tensor(2.5), info)) == 2.5
    assert distributed.gather({"a": 1}, info) == [{"a": 1}] and distributed.broadcast(3, info) == 3
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap(model, info, "fsdp", torch.device("cpu")) is model


def test_torchrun_environment_is_read(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    info = distributed.from_env()
    assert (info.rank, info.local_rank, info.world_size, info.is_main) == (3, 1, 4, False)
    monkeypatch.setenv("WORLD_SIZE", "four")
    with pytest.raises(LmforgeError, match="WORLD_SIZE"):
        distributed.from_env()


def test_global_batch_must_split_over_the_processes(monkeypatch, tiny_cfg, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(LmforgeError, match=r"--train.batch_size \(8\).*number of processes \(3\)"):
        Trainer(tiny_cfg(), tmp_path / "run")


@pytest.mark.slow
def test_an_rnn_resumed_under_torchrun_carries_each_ranks_hidden_state(tmp_path, small_text_file):
    """Each rank carries its own rows' LSTM state: stopped after step 4's checkpoint and resumed, two processes end
    bitwise where two processes never stopped do, and one process resuming the same checkpoint carries on with the
    same rows' state (issue 13, defect 6)."""
    import shutil

    from lmforge.cli import main

    args = [*COMMON, "--data", str(small_text_file), "--model.family", "rnn", "--model.rnn_cell", "lstm",
            "--train.grad_accum", "2"]
    lmforge(*args, "--out", str(tmp_path / "whole"), "--train.max_steps", "8", nproc=2)  # checkpoints at 4 and 8
    for name in ("run", "one"):  # as if stopped before step 8's checkpoint: the resume starts at step 4
        shutil.copytree(tmp_path / "whole", tmp_path / name)
        for path in (tmp_path / name / "checkpoints").glob("step-00000008.*"):
            path.unlink()
    lmforge("--resume", str(tmp_path / "run"), "--train.max_steps", "8", nproc=2)
    whole, run = (checkpoint_state(tmp_path / name, 8)["model"] for name in ("whole", "run"))
    assert whole.keys() == run.keys()
    for name in whole:
        assert torch.equal(whole[name], run[name]), name

    assert main(["train", "--resume", str(tmp_path / "one"), "--train.max_steps", "8"]) == 0  # one process
    one = checkpoint_state(tmp_path / "one", 8)["model"]
    for name in whole:
        assert (whole[name] - one[name]).abs().max().item() < 1e-5, name
    assert [r["step"] for r in records(tmp_path / "one", "resume")] == [4]
