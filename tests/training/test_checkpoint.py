"""Checkpoint files: atomic commits, verified loads, safe pruning, every RNG round-tripped."""

import json
import random

import numpy as np
import pytest
import torch
from training_helpers import scripted_evals

from lmforge.errors import LmforgeError
from lmforge.training import Trainer, checkpoint


def state(step: int) -> dict:
    return {"format": checkpoint.FORMAT, "model": {"w": torch.full((64, 64), float(step))}, "step": step}


def saved(run_dir, *steps):
    for step in steps:
        checkpoint.save(run_dir, step, state(step))
    return run_dir


def test_save_commits_a_pt_and_its_json_and_load_verifies_them(tmp_path):
    meta_path = checkpoint.save(tmp_path, 7, state(7), {"best_step": 7})
    meta = json.loads(meta_path.read_text())
    pt = tmp_path / "checkpoints" / "step-00000007.pt"
    assert meta["file"] == pt.name and meta["bytes"] == pt.stat().st_size and meta["best_step"] == 7
    loaded_meta, loaded = checkpoint.load(meta_path)
    assert loaded_meta == meta and torch.equal(loaded["model"]["w"], state(7)["model"]["w"])
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_a_failed_write_leaves_earlier_checkpoints_intact(tmp_path, monkeypatch):
    saved(tmp_path, 1, 2)
    before = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()}

    def disk_full(obj, path, *args, **kwargs):
        path.write_bytes(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(LmforgeError, match=r"step-00000003\.pt.*No space left.*intact"):
        checkpoint.save(tmp_path, 3, state(3))
    after = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()}
    assert after == before  # nothing new, nothing lost, no temporary file left behind
    assert checkpoint.latest(tmp_path).name == "step-00000002.json"


def test_a_real_short_write_leaves_earlier_checkpoints_intact(tmp_path):
    """The file-size limit makes the operating system refuse the write halfway, as a full disk would."""
    resource = pytest.importorskip("resource")
    import signal

    saved(tmp_path, 1)
    before = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()}
    big = {"format": checkpoint.FORMAT, "model": {"w": torch.zeros(200_000)}}
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get an error from write() instead of a signal
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, limits[1]))
    try:
        with pytest.raises(LmforgeError, match=r"could not write checkpoint '.*step-00000002\.pt'.*intact"):
            checkpoint.save(tmp_path, 2, big)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()} == before


def test_a_pt_without_its_json_is_not_a_checkpoint(tmp_path):
    saved(tmp_path, 1, 2)
    (tmp_path / "checkpoints" / "step-00000002.json").unlink()  # killed between the two renames
    (tmp_path / "checkpoints" / "step-00000003.pt.tmp").write_bytes(b"torn")  # killed mid-write
    assert checkpoint.latest(tmp_path).name == "step-00000001.json"
    checkpoint.prune(tmp_path, keep=3, best_step=1)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000001.json", "step-00000001.pt"]


@pytest.mark.parametrize("damage, why", [("truncate", "truncated"), ("flip", "SHA-256 does not match"),
                                         ("delete", "is missing"), ("bad json", "unreadable or corrupt")])
def test_damaged_checkpoint_is_named_in_one_line_and_nothing_is_deleted(tmp_path, damage, why):
    saved(tmp_path, 1, 2)
    folder = tmp_path / "checkpoints"
    pt, js = folder / "step-00000002.pt", folder / "step-00000002.json"
    data = pt.read_bytes()
    if damage == "truncate":
        pt.write_bytes(data[: len(data) // 3])
    elif damage == "flip":
        pt.write_bytes(data[:500] + bytes([data[500] ^ 0xFF]) + data[501:])
    elif damage == "delete":
        pt.unlink()
    else:
        js.write_text('{"step": 2, "file": "step-00')
    names_before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(LmforgeError) as exc:
        checkpoint.load(checkpoint.latest(tmp_path))
    message = str(exc.value)
    assert "\n" not in message and ("step-00000002.pt" in message or "step-00000002.json" in message)
    assert why in message
    assert "previous checkpoint (step 1)" in message
    assert sorted(p.name for p in folder.iterdir()) == names_before
    checkpoint.load(folder / "step-00000001.json")  # the earlier one still loads


def test_a_damaged_first_checkpoint_names_no_earlier_one_though_a_later_exists(tmp_path):
    saved(tmp_path, 1, 2)
    pt = tmp_path / "checkpoints" / "step-00000001.pt"
    pt.write_bytes(pt.read_bytes()[:100])
    with pytest.raises(LmforgeError, match="no earlier checkpoint exists"):
        checkpoint.load(tmp_path / "checkpoints" / "step-00000001.json")


def test_truncation_is_caught_even_when_the_json_was_rewritten_to_match(tmp_path):
    """Size and checksum aside, a .pt that torch cannot read is named too."""
    meta_path = checkpoint.save(tmp_path, 5, state(5))
    pt = tmp_path / "checkpoints" / "step-00000005.pt"
    pt.write_bytes(pt.read_bytes()[:1000])
    meta = json.loads(meta_path.read_text())
    meta.update(bytes=1000, sha256=checkpoint._sha256(pt))
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(LmforgeError, match=r"step-00000005\.pt' cannot be loaded.*no earlier checkpoint"):
        checkpoint.load(meta_path)


def test_no_checkpoint_says_so(tmp_path):
    with pytest.raises(LmforgeError, match="no checkpoint to resume from"):
        checkpoint.latest(tmp_path)


def test_prune_keeps_the_newest_k_and_the_best(tmp_path):
    saved(tmp_path, 1, 2, 3, 4, 5, 6)
    checkpoint.prune(tmp_path, keep=2, best_step=2)
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path)] == [2, 5, 6]
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt")) == [
        "step-00000002.pt", "step-00000005.pt", "step-00000006.pt"]


def test_a_run_keeps_its_newest_checkpoint_and_its_best_one(tmp_path, tiny_cfg):
    trainer = Trainer(tiny_cfg(max_steps=4, eval_interval=1, keep_checkpoints=1), tmp_path / "run")
    scripted_evals(trainer, [(3.0, 3.0), (2.0, 2.0), (2.5, 2.5), (2.6, 2.6)])
    trainer.fit()
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path / "run")] == [2, 4]
    meta = json.loads((tmp_path / "run" / "checkpoints" / "step-00000004.json").read_text())
    assert (meta["best_step"], meta["best_val_loss"]) == (2, 2.0)


def test_rng_state_round_trips_through_a_weights_only_load(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.random(), np.random.randn(), torch.randn(1)
    meta_path = checkpoint.save(tmp_path, 1, {"format": checkpoint.FORMAT, "rng": checkpoint.rng_state()})
    expected = (random.random(), np.random.randn(), torch.randn(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    checkpoint.set_rng_state(checkpoint.load(meta_path)[1]["rng"])
    assert random.random() == expected[0] and np.random.randn() == expected[1]
    assert torch.equal(torch.randn(3), expected[2])
