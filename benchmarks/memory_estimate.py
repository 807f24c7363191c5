"""Issue 17's memory bar on a GPU: `lmforge size`'s training estimate against the measured peak.

Part (d) of gpu_suite.py. For an activations-dominated and a weights-dominated shape (those of
tests/sizing/test_memory.py in a smoke run, larger ones on a GPU) it builds lmforge's own `Trainer`,
so the model, its fused AdamW, the precision `--train.dtype auto` picks (bf16 autocast on an H200)
and, for compiled rows, torch.compile are those of `lmforge train`. It takes one step (after it the
optimizer state exists; a compiled model compiles in it), resets CUDA's peak, takes a few more, and
compares `torch.cuda.max_memory_allocated` above what was allocated before the trainer was built
with `sizing.memory_of(cfg, vocab).total` for the same config on the same device.

On a CPU the steps run (the smoke test of the plumbing) but nothing is measured: the peak RSS of a
process that has already run other parts says little (freed heap is reused), so the tests measure
it in a fresh process (tests/sizing/peak_rss.py).
"""

from __future__ import annotations

import gc
import random
import tempfile
from pathlib import Path
from typing import Any

import torch

from lmforge.config import Config
from lmforge.sizing import memory_of
from lmforge.training import Trainer

# the shapes of tests/sizing/test_memory.py: 4,096 tokens through two layers of 128; 6 M parameters, 16 tokens a step
CPU_SHAPES = {"activations": {"model.n_layer": 2, "model.n_embd": 128, "model.block_size": 128,
                              "train.batch_size": 32},
              "weights": {"model.n_layer": 2, "model.n_embd": 512, "model.n_head": 8, "model.block_size": 8,
                          "train.batch_size": 2}}
# the same two on a GPU: 32,768 tokens through four layers of 256 (about 1 GB of activations, 3 M parameters);
# 101 M parameters (1.6 GB of weights, gradients and AdamW state) and 128 tokens a step
GPU_SHAPES = {"activations": {"model.n_layer": 4, "model.n_embd": 256, "model.n_head": 4, "model.block_size": 512,
                              "train.batch_size": 64},
              "weights": {"model.n_layer": 8, "model.n_embd": 1024, "model.n_head": 16, "model.block_size": 32,
                          "train.batch_size": 4}}
VOCAB = 64  # characters: the output head stays small, so the layers decide which part dominates
STEPS = 3  # measured steps, after the first
QUIET = {"train.tensorboard": False, "train.progress": False, "sample.max_new_tokens": 0}
WARM = {"model.n_layer": 1, "model.n_embd": 16, "model.n_head": 2, "model.block_size": 16, "train.batch_size": 2}


def corpus(vocab: int = VOCAB, n: int = 100_000) -> str:
    """Random letters (not ASCII controls), so the char tokenizer's vocabulary is exactly `vocab`."""
    rng = random.Random(0)
    return "".join(rng.choices([chr(c) for c in range(0x100, 0x100 + vocab)], k=n))


def config(values: dict[str, Any], device: torch.device, dtype: str, compiled: bool) -> Config:
    return Config.from_dict({}).updated({**QUIET, "train.device": str(device), "train.dtype": dtype,
                                         "train.compile": "true" if compiled else "false", **values})


def measure(name: str, values: dict[str, Any], device: torch.device, dtype: str, compiled: bool, text: str,
            tmp: Path) -> dict[str, Any]:
    """One row: the estimate, and on CUDA the peak allocated above the baseline over STEPS steps after the first."""
    cuda = device.type == "cuda"
    base = torch.cuda.memory_allocated(device) if cuda else 0
    run = Trainer(config(values, device, dtype, compiled), tmp / f"{name}-{int(compiled)}", text=text)
    run.train_step()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(STEPS):
        run.train_step()
    measured = None
    if cuda:
        torch.cuda.synchronize(device)
        measured = torch.cuda.max_memory_allocated(device) - base
    memory = memory_of(run.cfg, run.tokenizer.vocab_size)
    acts = sum(i.bytes for i in memory.items if i.name == "activations")
    row = {"shape": name, "compiled": compiled, "values": values, "vocab_size": run.tokenizer.vocab_size,
           "dtype": str(run.dtype).removeprefix("torch."), "params": run.model.num_params(),
           "estimate": memory.total, "activations_share": acts / memory.total, "measured": measured,
           "ratio": None if measured is None else memory.total / measured}
    row["within_25"] = None if measured is None else 0.75 <= row["ratio"] <= 1.25
    del run
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return row


def measure_all(shapes: dict[str, dict[str, Any]], device: torch.device, dtype: str = "auto",
                modes: tuple[bool, ...] = (False,)) -> list[dict[str, Any]]:
    """Every shape in every mode (False: eager, True: compiled), after a tiny warm-up trainer has paid the lazy
    initializations (cuBLAS's workspace among them) outside the baseline."""
    text = corpus()
    with tempfile.TemporaryDirectory(prefix="lmforge-memory-") as tmp:
        warm = Trainer(config(WARM, device, dtype, False), Path(tmp) / "warm", text=text)
        for _ in range(2):
            warm.train_step()
        del warm
        gc.collect()
        return [measure(name, values, device, dtype, compiled, text, Path(tmp))
                for compiled in modes for name, values in shapes.items()]


def print_table(rows: list[dict[str, Any]], device: torch.device) -> None:
    what = "max allocated" if device.type == "cuda" else "measured"
    print(f"| shape | mode | dtype | params | activations share | estimate MB | {what} MB | ratio | within 25% |\n"
          "|---|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        measured = f"{r['measured'] / 2**20:,.1f}" if r["measured"] is not None else f"not measured on {device.type}"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "—"
        within = {True: "yes", False: "no", None: "—"}[r["within_25"]]
        print(f"| {r['shape']} | {'compiled' if r['compiled'] else 'eager'} | {r['dtype']} | {r['params']:,} "
              f"| {r['activations_share']:.0%} | {r['estimate'] / 2**20:,.1f} | {measured} | {ratio} | {within} |")
