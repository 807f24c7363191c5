"""The GPU figures in one command: training throughput, time to quality, decode speed, the memory estimate.

    python benchmarks/gpu_suite.py --data PATH --json $OUT/gpu_suite.json     # an H200: about 6-8 minutes before (d)
    python benchmarks/gpu_suite.py --smoke --device cpu --data PATH --threads 1  # every part, tiny shapes, < 1 min
    python benchmarks/gpu_suite.py --parts d --json $OUT/gpu_memory.json       # the memory estimate alone

(a) Training throughput of a GPT-2-small-shaped lmforge transformer (12 layers, 12 heads,
    768 wide, context 1024, vocabulary 50304, biases on as in GPT-2) at batch 16 and 32,
    bf16 autocast, fused AdamW, eager and torch.compile'd; and Hugging Face's
    `GPT2LMHeadModel` holding the same weights (benchmarks/gpt2_twin.py), eager and
    compiled, in the same loop. The loop is lmforge's own step (`Trainer.train_step` with
    one micro-batch): schedule, autocast, `next_token_loss`, backward, gradient clipping,
    the optimizers of `build_optimizers` (the trainer reads the loss back only at log
    steps; here it is read after each timed step). Random token ids (data loading is not part of the figure). ms/step is the median
    of --steps timed steps after --warmup steps (the first of which compiles), each timed
    between CUDA synchronizations; MFU = tokens/s × `flops_per_token` / the device's peak
    from lmforge's table (`training/flops.py`).
(b) Time to quality: `python -m lmforge train --preset shakespeare-char` on Tiny Shakespeare
    as a fresh process (benchmarks/time_to_quality.py): seconds from process start to the
    first eval with val loss <= 1.47 (whole val split), and the best val loss logged
    within 60 s.
(c) Decode tokens/s at batch 1 and 8, greedy, 256 new tokens after a 16-token prompt:
    lmforge against `GPT2LMHeadModel.generate`, same weights, bf16 on the GPU
    (benchmarks/decode.py).
(d) The training memory estimate (`lmforge size`) against `torch.cuda.max_memory_allocated` for an
    activations-dominated and a weights-dominated shape, trained by lmforge's `Trainer` as `lmforge
    train` trains them, eager and compiled (benchmarks/memory_estimate.py); issue 17 asks for within 25%.
    On a CPU the steps run and nothing is measured (tests/sizing measures peak RSS in a fresh process).

Without `transformers` its rows are skipped with a note. Each part catches its own
failure (printed, and recorded in the JSON) and the next part runs. The JSON
(--json FILE; by default $OUT/gpu_suite.json when OUT is set) is rewritten after each
part, so a run stopped midway keeps the figures it had.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "src"))  # this checkout's lmforge, whether or not (and wherever) it is installed

# what the imports below need, and what `lmforge train` (part b) needs besides
IMPORT_NEEDS = ("numpy", "yaml", "regex", "safetensors")
TRAIN_NEEDS = ("tqdm", "matplotlib")
if missing := [m for m in IMPORT_NEEDS if importlib.util.find_spec(m) is None]:
    raise SystemExit(f"error: lmforge needs {', '.join(missing)}, which {sys.executable} lacks; "
                     "install them (pip install -e . in the checkout) or run with a Python that has them")

import decode as decode_bench
import memory_estimate
import time_to_quality

from lmforge.config import ModelConfig, TrainConfig
from lmforge.device import autocast
from lmforge.models.base import next_token_loss
from lmforge.training import flops
from lmforge.training.optim import build_optimizers, lr_at, set_lr, set_tf32

PARTS = {"a": "training throughput", "b": "time to quality", "c": "decode", "d": "memory estimate"}
TARGET = 1.47  # val loss (nats/char) of nanoGPT's shakespeare-char recipe
WITHIN_S = 60.0


class SuiteError(Exception):
    """An expected problem (a missing file, say): printed as one line, without a traceback."""


@dataclass
class Plan:
    """The shapes and lengths of every part; `smoke()` shrinks them all for a CPU check of the plumbing."""

    train_model: dict[str, Any] = field(default_factory=dict)  # changes to GPT-2 small's shape
    train_batches: tuple[int, ...] = (16, 32)
    warmup: int = 5
    steps: int = 20
    preset: str = "shakespeare-char"
    target: float | None = TARGET  # None: the data's unigram entropy (time_to_quality.unigram_entropy)
    ttq_overrides: tuple[str, ...] = ()
    ttq_timeout_s: float = 240.0
    decode_model: dict[str, Any] = field(default_factory=dict)
    decode_batches: tuple[int, ...] = (1, 8)
    new_tokens: int = 256
    prompt_len: int = 16
    repeats: int = 2
    memory_shapes: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(memory_estimate.GPU_SHAPES))

    @classmethod
    def smoke(cls) -> Plan:
        tiny = {"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 64, "vocab_size": 512}
        ttq = ("--model.n_layer", "1", "--model.n_head", "2", "--model.n_embd", "32", "--model.block_size", "32",
               "--train.batch_size", "8", "--train.max_steps", "60", "--train.warmup_steps", "5",
               "--train.decay_steps", "0", "--train.eval_interval", "30", "--train.eval_batch_size", "64",
               "--train.eval_train_tokens", "1024", "--sample.max_new_tokens", "10")
        # target: the characters' unigram entropy, which 60 steps beat and a loop that does not train (near
        # ln(vocabulary)) misses, so "reached" means the loop learned something
        return cls(train_model=tiny, train_batches=(2, 4), warmup=1, steps=3, target=None, ttq_overrides=ttq,
                   ttq_timeout_s=120.0, decode_model=tiny, new_tokens=8, prompt_len=4, repeats=1,
                   memory_shapes=dict(memory_estimate.CPU_SHAPES))


# --------------------------------------------------------------------- (a) training throughput


def throughput(step_seconds: list[float], tokens_per_step: int, flops_per_token: float,
               peak: float | None) -> dict[str, float | None]:
    """The median step and what follows from it: ms/step, tokens/s, and MFU (None without a peak figure)."""
    if not step_seconds:
        raise ValueError("no timed steps")
    step = statistics.median(step_seconds)
    tokens_per_s = tokens_per_step / step
    return {"ms_per_step": step * 1e3, "tokens_per_s": tokens_per_s,
            "mfu": flops.mfu(tokens_per_s, flops_per_token, peak, 1)}


def train_step(forward: Callable[[torch.Tensor], torch.Tensor], params: list[torch.Tensor],
               optimizers: list[torch.optim.Optimizer], x: torch.Tensor, y: torch.Tensor, step: int, tcfg: TrainConfig,
               device: torch.device, dtype: torch.dtype) -> float:
    """One optimizer step as `Trainer.train_step` takes it with one micro-batch and no float16 scaler; the loss."""
    set_lr(optimizers, lr_at(step, tcfg))
    with autocast(device, dtype):
        loss = next_token_loss(forward(x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, tcfg.grad_clip)
    for optimizer in optimizers:
        optimizer.step()
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_training(module: torch.nn.Module, forward: Callable[[torch.Tensor], torch.Tensor], batch: int,
                  shape: tuple[ModelConfig, int], device: torch.device, dtype: torch.dtype, warmup: int,
                  steps: int) -> tuple[list[float], float, float]:
    """(seconds of each timed step, seconds of the first step (compiling, if any), last loss)."""
    tcfg = TrainConfig(max_steps=warmup + steps, warmup_steps=1)  # lmforge's defaults: lr 1e-3, decay 0.1, clip 1
    optimizers = build_optimizers(module, tcfg, device)  # fused AdamW on CUDA
    params = [p for p in module.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(batch)
    cfg, vocab = shape
    x, y = (torch.randint(vocab, (batch, cfg.block_size), generator=gen).to(device) for _ in range(2))
    module.train()
    times, first, loss = [], 0.0, float("nan")
    for i in range(warmup + steps):
        synchronize(device)
        start = time.perf_counter()
        loss = train_step(forward, params, optimizers, x, y, i, tcfg, device, dtype)
        synchronize(device)
        seconds = time.perf_counter() - start
        if i == 0:
            first = seconds
        if i >= warmup:
            times.append(seconds)
    del optimizers
    return times, first, loss


def time_variant(name: str, compiled: bool, module: torch.nn.Module, batch: int, shape: tuple[ModelConfig, int],
                 device: torch.device, dtype: torch.dtype, plan: Plan, backend: str) -> dict[str, Any]:
    """Time one model (lmforge or transformers), eager or compiled, at one batch size."""
    runner = module
    if compiled:
        torch._dynamo.reset()  # each compiled variant starts cold, as in a fresh trainer process
        runner = torch.compile(module, backend=backend)
    if name == "lmforge":
        forward = runner
    else:
        def forward(x: torch.Tensor) -> torch.Tensor:
            return runner(input_ids=x, use_cache=False).logits
    times, first, loss = time_training(module, forward, batch, shape, device, dtype, plan.warmup, plan.steps)
    return {"model": name, "compiled": compiled, "batch": batch, "tokens_per_step": batch * shape[0].block_size,
            "step_seconds": times, "first_step_s": first, "loss": loss}


def part_a(plan: Plan, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    notes: list[str] = []
    twin = have_transformers()
    if not twin:
        notes.append("transformers is not installed: its rows are skipped")
    compiling = should_compile(args.compile, device)
    if not compiling:
        notes.append(f"compiled rows skipped (--compile {args.compile} on {device.type})")
    cfg, vocab = shape = decode_bench.gpt2_small(**plan.train_model)
    model, hf, gap = decode_bench.build(device, torch.float32, shape, twin=twin)  # float32 weights, autocast below
    set_tf32(True)  # as the trainer does (--train.tf32 true): no effect on bf16 matmuls
    per_token = flops.flops_per_token(model)
    precision = "float32 (no autocast)" if dtype == torch.float32 else f"{dtype_name(dtype)} autocast"
    peak = args.peak_flops or flops.peak_flops(device, dtype, tf32=True)
    print(f"GPT-2-small shape: {model.describe()}, vocabulary {vocab}, {model.num_params() / 1e6:.1f} M "
          f"parameters, {per_token / 1e9:.3g} GFLOP per token (training); {precision} on "
          f"{device_name(device)}; peak {'unknown (no MFU)' if peak is None else f'{peak / 1e12:,.0f} TFLOP/s'}; "
          f"median of {plan.steps} steps after {plan.warmup} warm-up" + (f"; logit gap to the twin {gap:.1e}" if twin else ""),
          flush=True)
    variants: list[tuple[str, bool, torch.nn.Module]] = [("lmforge", False, model)]
    if compiling:
        variants.append(("lmforge", True, model))
    if twin:
        hf.config.use_cache = False
        variants.append(("transformers", False, hf))
        if compiling:
            variants.append(("transformers", True, hf))
    rows, failed = [], []
    for batch in plan.train_batches:
        for name, compiled, module in variants:
            mode = "compiled" if compiled else "eager"
            try:  # a variant that fails (a compile error, out of memory) is noted; the others still run
                row = time_variant(name, compiled, module, batch, shape, device, dtype, plan, args.compile_backend)
            except Exception as exc:  # noqa: BLE001
                traceback.print_exc()
                for p in module.parameters():
                    p.grad = None
                failed.append(f"{name} {mode} batch {batch}: {type(exc).__name__}: {exc}")
                print(f"  {name:<12} {mode:<8} batch {batch:>3}: failed: {type(exc).__name__}: {exc}", flush=True)
                free_memory(device)
                continue
            row.update(throughput(row.pop("step_seconds"), row["tokens_per_step"], per_token, peak))
            rows.append(row)
            print(f"  {name:<12} {mode:<8} batch {batch:>3}: {row['ms_per_step']:8.1f} ms/step "
                  f"{row['tokens_per_s']:12,.0f} tok/s  first step {row['first_step_s']:.1f} s", flush=True)
            free_memory(device)
    print("\n| model | mode | batch | ms/step | tokens/s | MFU | first step s |\n|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        mfu = "—" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        print(f"| {r['model']} | {'compiled' if r['compiled'] else 'eager'} | {r['batch']} | {r['ms_per_step']:,.1f} "
              f"| {r['tokens_per_s']:,.0f} | {mfu} | {r['first_step_s']:.1f} |")
    for note in notes:
        print(f"note: {note}")
    for failure in failed:
        print(f"failed: {failure}")
    error = f"{len(failed)} of {len(failed) + len(rows)} runs failed: " + "; ".join(failed) if failed else None
    return {"rows": rows, "notes": notes, "error": error, "model": {**cfg.model_dump(), "vocab_size": vocab}, "params": model.num_params(),
            "flops_per_token": per_token, "peak_flops": peak, "dtype": dtype_name(dtype), "logit_gap": gap,
            "compile_backend": args.compile_backend if compiling else None}


# --------------------------------------------------------------------- (b) time to quality


def part_b(plan: Plan, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    data = Path(args.data)
    if not data.is_file():
        raise SuiteError(f"--data {data}: no such file; pass --data with the path to tinyshakespeare.txt "
                         "(../shared does not travel to a GPU machine: copy the file to shared/data/ in the checkout)")
    overrides = [*plan.ttq_overrides, "--train.device", str(device), *shlex.split(args.b_overrides)]
    env = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else None
    print("$", shlex.join(time_to_quality.train_command(plan.preset, data, Path("<tmp>/run"), overrides)), flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu-suite-ttq-") as tmp:  # the run's weights and checkpoint go with it
        target = time_to_quality.unigram_entropy(data) if plan.target is None else plan.target
        result = time_to_quality.run_preset(plan.preset, data, target, overrides, out=tmp, within_s=WITHIN_S,
                                            timeout_s=plan.ttq_timeout_s, env=env)
        if args.json:  # the run's log, curves and samples beside the JSON, for tuning the preset
            for name in ("metrics.jsonl", "curves.png", "samples.txt", "config.yaml"):
                source = Path(result["run_dir"]) / name
                if source.is_file():
                    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, Path(args.json).with_name(f"gpu_suite_ttq_{name}"))
    time_to_quality.print_report(result)
    if result["error"]:
        print(f"lmforge train failed: {result['error']}")
    return result


# --------------------------------------------------------------------- (c) decode


def part_c(plan: Plan, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    notes = [] if have_transformers() else ["transformers is not installed: its columns are skipped"]
    mode = "eager" if args.compile == "false" else "auto"  # auto: lmforge's compiled static step on CUDA
    model, hf, gap = decode_bench.build(device, dtype, decode_bench.gpt2_small(**plan.decode_model), twin=not notes)
    print(f"{model.describe()}, random weights, {dtype_name(dtype)} weights on {device_name(device)}, prompt "
          f"{plan.prompt_len}, {plan.new_tokens} new tokens, greedy, best of {plan.repeats}; lmforge decode mode {mode}",
          flush=True)
    rows = decode_bench.measure(model, hf, device, list(plan.decode_batches), plan.new_tokens, plan.prompt_len,
                                plan.repeats, mode)
    decode_bench.print_table(rows)
    for note in notes:
        print(f"note: {note}")
    return {"rows": rows, "notes": notes, "dtype": dtype_name(dtype), "mode": mode, "logit_gap": gap}


# --------------------------------------------------------------------- (d) memory estimate


def part_d(plan: Plan, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    # compiled rows on CUDA only, where `lmforge train` compiles (the trainer takes no --compile-backend)
    modes = (False, True) if device.type == "cuda" and args.compile != "false" else (False,)
    how = (f"one step, then the peak of {memory_estimate.STEPS} more above what was allocated before the trainer"
           if device.type == "cuda" else "the steps run, nothing is measured (tests/sizing measures peak RSS)")
    print(f"lmforge's Trainer on {device_name(device)}, --train.dtype {args.dtype}: {how}", flush=True)
    rows = memory_estimate.measure_all(plan.memory_shapes, device, args.dtype, modes)
    memory_estimate.print_table(rows, device)
    return {"rows": rows, "error": None}


# --------------------------------------------------------------------- the run


def have_transformers() -> bool:
    return importlib.util.find_spec("transformers") is not None


def should_compile(setting: str, device: torch.device) -> bool:
    return device.type == "cuda" if setting == "auto" else setting == "true"


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def git_commit(given: str | None) -> str:
    if given:
        return given

    def git(*words: str) -> str:
        return subprocess.run(["git", *words], cwd=REPO, capture_output=True, text=True, timeout=10, check=True).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no").strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git here; pass --commit)"


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def header(args: argparse.Namespace, device: torch.device, title: str = "lmforge GPU suite") -> dict[str, Any]:
    transformers = None
    if have_transformers():
        import transformers as hf_module

        transformers = hf_module.__version__
    missing = [m for m in TRAIN_NEEDS if importlib.util.find_spec(m) is None]
    meta = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": device_name(device),
        "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "transformers": transformers, "commit": git_commit(args.commit), "smoke": args.smoke,
        "argv": sys.argv[1:], "missing_modules": missing,
    }
    print(f"# {title}{' (smoke: tiny shapes)' if args.smoke else ''}\n")
    for key in ("date", "device", "torch", "cuda", "python", "transformers", "commit"):
        print(f"- {key}: {meta[key] if meta[key] is not None else 'none'}")
    if missing:
        print(f"- missing modules lmforge train needs: {', '.join(missing)} (part b will fail)")
    return meta


def write_json(doc: dict[str, Any], path: Path | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def run_part(key: str, fn: Callable[[], dict[str, Any]], device: torch.device,
             titles: dict[str, str] = PARTS) -> dict[str, Any]:
    """Run one part; its failure is printed and recorded, never raised."""
    print(f"\n## ({key}) {titles[key]}\n", flush=True)
    start = time.perf_counter()
    try:
        result = fn()
    except SuiteError as exc:
        print(f"error: {exc}", flush=True)
        result = {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 -- one broken part must not lose the others' figures
        traceback.print_exc()
        print(f"error: part ({key}) failed: {type(exc).__name__}: {exc}", flush=True)
        result = {"error": f"{type(exc).__name__}: {exc}"}
    free_memory(device)
    status = "error" if result.get("error") else "ok"
    return {"status": status, "seconds": round(time.perf_counter() - start, 1), **result}


def default_data() -> Path:
    """../shared/data/tinyshakespeare.txt beside the checkout; else shared/data/ inside it (a checkout's shared/
    folder travels to a GPU machine, the one beside it does not)."""
    beside, inside = time_to_quality.DEFAULT_DATA, REPO / "shared/data/tinyshakespeare.txt"
    return inside if not beside.is_file() and inside.is_file() else beside


def default_json() -> str | None:
    out = os.environ.get("OUT")
    return str(Path(out) / "gpu_suite.json") if out else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="a,b,c,d", help="which parts, comma-separated: a (training throughput), "
                    "b (time to quality), c (decode), d (memory estimate)")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (for a smoke test)")
    ap.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"],
                    help="(a) autocast, (c) weights, (d) --train.dtype; auto: bfloat16 on CUDA, float32 on a CPU")
    ap.add_argument("--data", default=str(default_data()),
                    help="Tiny Shakespeare, for part b (default ../shared/data/tinyshakespeare.txt, else shared/data/ here)")
    ap.add_argument("--json", metavar="FILE", default=default_json(),
                    help="write the figures here (default: $OUT/gpu_suite.json when OUT is set)")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes and few steps everywhere: checks the plumbing")
    ap.add_argument("--compile", default="auto", choices=["auto", "true", "false"],
                    help="compiled rows in (a) and (d) (d: CUDA only), and lmforge's compiled decode in (c); "
                    "auto: on CUDA only")
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile backend for (a) (eager: trace only)")
    ap.add_argument("--a-batches", help="(a) batch sizes, comma-separated (default 16,32; smoke 2,4)")
    ap.add_argument("--warmup", type=int, help="(a) untimed steps first (default 5; smoke 1)")
    ap.add_argument("--steps", type=int, help="(a) timed steps (default 20; smoke 3)")
    ap.add_argument("--peak-flops", type=float, default=0.0, help="(a) peak FLOP/s for MFU; 0: lmforge's GPU table")
    ap.add_argument("--b-preset", help="(b) preset (default shakespeare-char)")
    ap.add_argument("--b-overrides", default="", help="(b) extra `--section.key value` pairs, as one quoted string")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads, here and in (b)'s process (0: default)")
    ap.add_argument("--commit", help="the commit to record when the checkout has no .git")
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        print(f"error: --parts {args.parts}: unknown part {', '.join(unknown)}; choose from {', '.join(PARTS)}",
              file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {args.device}: no CUDA GPU is visible; use --device cpu (with --smoke)", file=sys.stderr)
        return 2
    dtype = {"auto": torch.bfloat16 if device.type == "cuda" else torch.float32,
             "bfloat16": torch.bfloat16, "float32": torch.float32}[args.dtype]
    plan = Plan.smoke() if args.smoke else Plan()
    plan.warmup = args.warmup if args.warmup is not None else plan.warmup
    plan.steps = args.steps if args.steps is not None else plan.steps
    plan.preset = args.b_preset or plan.preset
    if args.a_batches:
        plan.train_batches = tuple(int(b) for b in args.a_batches.split(","))
    json_path = Path(args.json) if args.json else None

    started = time.perf_counter()
    doc: dict[str, Any] = {"meta": header(args, device), "parts": {}}
    write_json(doc, json_path)
    runners = {"a": lambda: part_a(plan, args, device, dtype), "b": lambda: part_b(plan, args, device),
               "c": lambda: part_c(plan, args, device, dtype), "d": lambda: part_d(plan, args, device)}
    for key in parts:
        doc["parts"][key] = run_part(key, runners[key], device)
        write_json(doc, json_path)
    doc["meta"]["total_s"] = round(time.perf_counter() - started, 1)
    write_json(doc, json_path)
    print("\n## summary\n\n| part | status | seconds |\n|---|---|---:|")
    for key, result in doc["parts"].items():
        print(f"| ({key}) {PARTS[key]} | {result['status']} | {result['seconds']:.1f} |")
    print(f"\ntotal {doc['meta']['total_s']:.1f} s" + (f"; figures in {json_path}" if json_path else ""))
    return 0 if all(r["status"] == "ok" for r in doc["parts"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
