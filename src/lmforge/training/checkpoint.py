"""Resumable checkpoints in RUN_DIR/checkpoints/: written atomically, verified on load, pruned safely.

    step-00000400.pt     torch.save of {model, optimizers, scaler, rng, trainer}: tensors and
                         plain values, so it loads with weights_only=True
    step-00000400.json   its size and SHA-256, the step, the val loss: the commit mark

Both go through `atomic_write`, the .json after the .pt is complete, so a process killed at any instant
leaves a complete checkpoint or a stray file that is ignored and later removed, never a damaged earlier
one; old checkpoints are deleted only after a newer one is committed. On load the size and checksum are
checked before unpickling, so a truncated or corrupted file is named in one line instead of half-loaded.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmforge.errors import LmforgeError
from lmforge.training import distributed
from lmforge.training.logs import elapsed_s
from lmforge.training.run_dir import atomic_write

CHECKPOINT_DIR = "checkpoints"
FORMAT = 1


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def save(run_dir: Path, step: int, state: dict[str, Any], info: dict[str, Any] | None = None) -> Path:
    """Commit checkpoint `step`; returns its .json path. Earlier checkpoints are untouched, even on failure."""
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    data_path, meta_path = folder / f"step-{step:08d}.pt", folder / f"step-{step:08d}.json"
    try:
        atomic_write(data_path, lambda tmp: torch.save(state, tmp))
        meta = {"format": FORMAT, "step": step, "file": data_path.name, "bytes": data_path.stat().st_size,
                "sha256": _sha256(data_path), **(info or {})}
        atomic_write(meta_path, lambda tmp: tmp.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8"))
    except (OSError, RuntimeError) as exc:  # torch's zip writer reports a failed write as a RuntimeError
        reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0][:100]
        raise LmforgeError(f"could not write checkpoint '{data_path}' ({reason}); the earlier checkpoints in "
                           f"{folder} are intact; free disk space and continue with --resume") from None
    return meta_path


def prune(run_dir: Path, keep: int, best_step: int) -> None:
    """Delete all but the newest `keep` checkpoints and the one of `best_step`, and any stray files. The .json goes
    first: a checkpoint without its commit mark is ignored, so a kill between the two deletions leaves only an
    orphan that the next prune removes."""
    folder = checkpoint_dir(run_dir)
    steps = [step for step, _ in list_checkpoints(run_dir)]
    keep_steps = set(steps[-keep:]) | {best_step}
    for step in steps:
        if step not in keep_steps:
            (folder / f"step-{step:08d}.json").unlink(missing_ok=True)
            (folder / f"step-{step:08d}.pt").unlink(missing_ok=True)
    committed = {f"step-{s:08d}.pt" for s in steps if s in keep_steps}
    for path in folder.glob("step-*"):
        if path.name.endswith(".tmp") or (path.suffix == ".pt" and path.name not in committed):
            path.unlink(missing_ok=True)


# ------------------------------------------------------------------ reading


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Committed checkpoints (those with a .json), oldest first."""
    found = checkpoint_dir(run_dir).glob("step-" + "[0-9]" * 8 + ".json")  # nothing when the folder is missing
    return sorted((int(p.stem.removeprefix("step-")), p) for p in found)


def latest(run_dir: Path) -> Path:
    """The .json of the newest committed checkpoint, or a one-line error saying there is none."""
    found = list_checkpoints(run_dir)
    if not found:
        raise LmforgeError(f"'{run_dir}' has no checkpoint to resume from ({checkpoint_dir(run_dir)} is empty or "
                           "missing); start a new run with `lmforge train --out DIR`")
    return found[-1][1]


def load(meta_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metadata, state) of one checkpoint, checked for truncation and corruption first; tensors on the CPU."""
    hint = _fallback_hint(meta_path)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        data_path = meta_path.with_name(meta["file"])
        size, digest = int(meta["bytes"]), str(meta["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LmforgeError(f"checkpoint '{meta_path}' is unreadable or corrupt ({type(exc).__name__}){hint}") from None
    if not data_path.is_file():
        raise LmforgeError(f"checkpoint '{data_path}' is missing (its {meta_path.name} refers to it){hint}")
    actual = data_path.stat().st_size
    if actual != size:
        raise LmforgeError(f"checkpoint '{data_path}' is truncated or corrupt ({actual:,} bytes, expected {size:,}){hint}")
    if _sha256(data_path) != digest:
        raise LmforgeError(f"checkpoint '{data_path}' is corrupt (its SHA-256 does not match {meta_path.name}){hint}")
    try:
        state = torch.load(data_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        reason = str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__
        raise LmforgeError(f"checkpoint '{data_path}' cannot be loaded ({reason}){hint}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise LmforgeError(f"checkpoint '{data_path}' is not a format-{FORMAT} lmforge checkpoint{hint}")
    return meta, state


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _fallback_hint(meta_path: Path) -> str:
    """How to get past a bad checkpoint without losing anything: name the one before it."""
    earlier = [(s, p) for s, p in list_checkpoints(meta_path.parent.parent) if p != meta_path and p.name < meta_path.name]
    if earlier:
        return (f"; move {meta_path.stem}.* out of {meta_path.parent} to resume from the previous checkpoint "
                f"(step {earlier[-1][0]})")
    return "; no earlier checkpoint exists, so start a new run"


# ------------------------------------------------------------------ random number generators


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators: a run starts from the same state every time."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """Every global RNG of this process, as tensors and plain values (loadable with weights_only=True). On CUDA,
    this process's GPU's only: asking for all would open a context on each GPU from every rank."""
    _, key, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                       "gauss": float(gauss)}}
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


# --------------------------------------------------------------------- a Trainer's checkpoint


def data_fingerprint(ids: np.ndarray) -> dict[str, Any]:
    """Enough to notice that a resumed run was given different text: the length and a hash of the first tokens."""
    head = np.ascontiguousarray(ids[: 1 << 20])
    return {"tokens": int(len(ids)), "head_blake2b": hashlib.blake2b(head.tobytes(), digest_size=16).hexdigest()}


def save_trainer(trainer) -> None:
    """What a `Trainer` needs to continue exactly: model, optimizers, scaler, every rank's RNG and feed, the loop's
    state, the data's fingerprint. Collectives on every rank (FSDP gathers the weights; the RNG and feed states,
    an RNN's hidden state of its rows, come from every rank); rank 0 writes."""
    dist, state = trainer.dist, trainer.state
    model, optimizers = distributed.full_state(trainer.model, trainer.optimizers)
    loop = {**state.state_dict(elapsed_s()), "data": data_fingerprint(trainer.train_ids),
            "feed": distributed.gather(trainer.feed.state_dict(), dist), "world_size": dist.world_size}
    saved = {"format": FORMAT, "model": model, "optimizers": optimizers, "scaler": trainer.scaler.state_dict(),
             "rng": distributed.gather(rng_state(trainer.device), dist), "trainer": loop}
    if dist.is_main:
        info = {"best_step": state.best_step, "best_val_loss": state.best_val_loss if state.best else None}
        save(trainer.out_dir, state.step, saved, info)
        prune(trainer.out_dir, trainer.cfg.train.keep_checkpoints, state.best_step)


def restore_trainer(trainer, meta_path: Path) -> None:
    """Load `meta_path` into a `Trainer`: rank 0 reads and verifies it, then broadcasts it to the other ranks."""
    dist, cfg = trainer.dist, trainer.cfg
    saved: dict[str, Any] = {"model": {}, "optimizers": {}}
    if dist.is_main:
        _, saved = load(meta_path)
    small = distributed.broadcast({k: saved.get(k) for k in ("scaler", "rng", "trainer")}, dist)
    loop = small["trainer"]
    if loop["data"] != data_fingerprint(trainer.train_ids):
        raise LmforgeError(f"the training text differs from the one the checkpoint in {trainer.out_dir} was trained "
                           f"on ({loop['data']['tokens']:,} train tokens then, {len(trainer.train_ids):,} now); "
                           "resume with the same --data")
    distributed.load_full_state(trainer.model, trainer.optimizers, saved["model"], saved["optimizers"], dist)
    if small["scaler"]:
        trainer.scaler.load_state_dict(small["scaler"])
    trainer.state.load_state_dict(loop, cfg.train.batch_size * cfg.model.block_size)
    feed = loop.get("feed", [])
    trainer.feed.load_state_dict(feed if isinstance(feed, list) else [feed])  # a dict: saved by an older lmforge
    rngs = small["rng"]
    if dist.rank < len(rngs):
        set_rng_state(rngs[dist.rank], trainer.device)
    else:  # more ranks than when saved: a fresh dropout stream for the new ones
        torch.manual_seed(cfg.train.seed + dist.rank + trainer.step)
