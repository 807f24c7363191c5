"""The speed figures that matter on a laptop-class CPU (two cores), in one command.

    python benchmarks/cpu_suite.py --data ../shared/data/tinyshakespeare.txt --json cpu_suite.json

(t) time to quality: `lmforge train --preset shakespeare-char-cpu` as fresh processes, one per
    seed (`--seeds`, three by default: the goal must hold for more than the tuned seed), seconds
    from process start to the first eval with val loss ≤ 1.88 (nats/char over the whole val
    split: the preset scores the whole split at every eval, so the first such eval is the
    crossing). In the same run, side by side, the reference recipe (the preset this one
    replaced: 4 layers × 128, learned positions, GELU, AdamW at 3e-3 for 1000 steps), so the
    ratio of the times survives a noisy, shared machine; the worst seed's ratio is `speedup`.
    Then `shakespeare-char-cpu-budget`, the lowest val loss we found within the wall time the
    reference takes for its 1000 steps: its best whole-split val loss, and whether its process
    ended within the reference's wall time in this run.
(d) decode: a GPT-2-small-shaped model (random weights) decoding greedily at batch 1
    and 8, lmforge against `transformers`' `generate` with the same weights
    (`benchmarks/decode.py`): lmforge in float32, then lmforge with int8 weights
    (`--quantize int8`) against the same float32 `transformers`.

Each part catches its own failure, so one broken part does not lose the other's
figures. `--smoke` shrinks everything to check the plumbing in seconds; its (t) target is the data's
unigram entropy, which a training loop that does not learn misses.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from lmforge.generation.quantize import quantize_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
import decode as decode_bench  # benchmarks/ is not a package
import gpu_suite
import time_to_quality

PRESET, BUDGET_PRESET, TARGET, WITHIN_S = "shakespeare-char-cpu", "shakespeare-char-cpu-budget", 1.88, 85.0
SEEDS = "1337,1,2"  # 1337: the seed every preset ships with
# The recipe shakespeare-char-cpu replaced (issue 2's preset), as overrides of the new one.
REFERENCE = ["--model.n_layer", "4", "--model.n_head", "4", "--model.n_embd", "128", "--model.positions", "learned",
             "--model.mlp", "gelu", "--train.optimizer", "adamw", "--train.lr", "3e-3", "--train.min_lr", "3e-4",
             "--train.warmup_steps", "50", "--train.max_steps", "1000", "--train.eval_interval", "100",
             "--train.eval_batch_size", "128", "--train.eval_train_tokens", "32768", "--train.max_seconds", "0",
             "--train.tensorboard", "true", "--sample.max_new_tokens", "200", "--train.seed", "1337",
             "--model.dropout", "0", "--train.batch_size", "32", "--model.block_size", "64", "--train.eval_tokens", "0",
             "--train.schedule", "cosine", "--train.decay_steps", "0", "--train.weight_decay", "0.1"]
SMOKE_TTQ = ["--train.max_steps", "40", "--train.eval_interval", "20", "--train.warmup_steps", "5", "--model.n_layer",
             "1", "--model.n_embd", "32", "--train.max_seconds", "0"]
PARTS = {"t": "time to quality, shakespeare-char-cpu against the reference recipe, and the budget preset",
         "d": "decode, GPT-2-small shape"}


def seeds(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise gpu_suite.SuiteError(f"--seeds {text!r}: give comma-separated integers, such as --seeds {SEEDS}")
    return values


def part_t(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(args.data)
    if not data.is_file():
        raise gpu_suite.SuiteError(f"--data {data}: no such file; pass --data with the path to tinyshakespeare.txt")
    smoke = SMOKE_TTQ if args.smoke else []
    # a smoke run's few steps reach no real target, but a loop that trains beats the characters' frequencies
    target = time_to_quality.unigram_entropy(data) if args.smoke else TARGET
    runs = [(f"preset seed {s}", PRESET, ["--train.seed", str(s), *smoke]) for s in seeds(args.seeds)]
    if args.reference:  # after the first seed: the two figures the goal compares run next to each other
        runs.insert(1, ("reference", PRESET, REFERENCE + smoke))
    if args.budget:
        runs.append(("budget", BUDGET_PRESET, smoke))
    env = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else None
    done: dict[str, dict[str, Any]] = {}
    for name, preset, overrides in runs:
        overrides = [*overrides, "--train.device", "cpu", *shlex.split(args.t_overrides)]
        print(f"### {name}\n\n$", shlex.join(time_to_quality.train_command(preset, data, Path("<tmp>/run"), overrides)),
              flush=True)
        with tempfile.TemporaryDirectory(prefix="cpu-suite-ttq-") as tmp:
            done[name] = time_to_quality.run_preset(preset, data, target, overrides, out=tmp, within_s=WITHIN_S, env=env)
        time_to_quality.print_report(done[name])
        if done[name]["error"]:
            print(f"lmforge train failed: {done[name]['error']}")
    results: dict[str, Any] = {"preset": [r for n, r in done.items() if n.startswith("preset")]}
    for r, s in zip(results["preset"], seeds(args.seeds)):
        r["seed"] = s
    if "reference" in done:
        results["reference"] = done["reference"]
    if "budget" in done:
        results["budget"] = budget_figures(done["budget"], done.get("reference"))
    results.update(speedups(results["preset"], done.get("reference"), target))
    if any(r["error"] for r in done.values()):
        results["error"] = "a training run failed (see above)"
    return results


def speedups(presets: list[dict[str, Any]], reference: dict[str, Any] | None, target: float) -> dict[str, Any]:
    """The reference's time to target over each seed's, from process start; `speedup` is the worst seed's (None: a
    run missed the target). `loop_speedups`: the same from each training loop's start (start-up left out)."""
    ref_s = reference and reference.get("time_to_target_s")
    if not ref_s:
        return {}

    def ratio(r: dict[str, Any], key: str) -> float | None:
        return reference[key] / r[key] if r.get(key) and reference.get(key) else None

    ratios, loops = [ratio(r, "time_to_target_s") for r in presets], [ratio(r, "loop_to_target_s") for r in presets]
    print(f"\ntime to val ≤ {target:.4g}: reference {ref_s:.1f} s (step {reference['step_at_target']})")
    for r, x, loop in zip(presets, ratios, loops):
        loops_s = f" ({loop:.2f}× from the loops' starts)" if loop else ""
        hit = (f"{r['time_to_target_s']:.1f} s (step {r['step_at_target']}, {r['val_at_target']:.4f}), {x:.2f}× faster"
               f"{loops_s}" if x else "never reached")
        print(f"  preset seed {r['seed']}: {hit}")
    return {"speedups": ratios, "speedup": None if None in ratios else min(ratios), "loop_speedups": loops}


def budget_figures(budget: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, Any]:
    """The budget preset's best whole-split val loss, and whether its process ended within the reference's."""
    budget = dict(budget)
    if reference and budget["evals"]:
        budget["budget_s"] = reference["wall_s"]
        budget["within_budget"] = budget["wall_s"] <= reference["wall_s"]
        early = [e for e in budget["evals"] if e["elapsed_s"] <= reference["wall_s"]]
        best = min(early, key=lambda e: e["val_loss"], default=None)
        budget["best_in_budget_val_loss"] = best and best["val_loss"]
        best_s = "none" if best is None else f"{best['val_loss']:.4f} at step {best['step']}"
        print(f"\nbudget: {BUDGET_PRESET} ended at {budget['wall_s']:.1f} s, the reference at {reference['wall_s']:.1f} s "
              f"({'within' if budget['within_budget'] else 'OVER'} the budget); best val loss within the budget "
              f"{best_s}, the reference's {reference['best_val_loss']:.4f}")
    return budget


def part_d(args: argparse.Namespace) -> dict[str, Any]:
    shape = decode_bench.gpt2_small(n_layer=2, n_head=2, n_embd=64, vocab_size=512) if args.smoke else None
    hf_ok = gpu_suite.have_transformers()
    model, hf, gap = decode_bench.build(torch.device("cpu"), torch.float32, shape, twin=hf_ok)
    new_tokens = 8 if args.smoke else args.new_tokens
    print(f"{model.describe()}, random weights, float32, {new_tokens} new tokens after a 16-token prompt, greedy, "
          f"best of {args.repeats}", flush=True)
    rows = decode_bench.measure(model, hf, torch.device("cpu"), [1, 8], new_tokens, 16, args.repeats, "eager")
    decode_bench.print_table(rows)
    print("\nlmforge with int8 weights (`lmforge sample --quantize int8`), against the same float32 transformers:")
    rows8 = decode_bench.measure(quantize_model(model, "int8"), hf, torch.device("cpu"), [1, 8], new_tokens, 16,
                                 args.repeats, "eager")
    decode_bench.print_table(rows8)
    return {"rows": rows, "int8_rows": rows8, "logit_gap": gap,
            "notes": [] if hf_ok else ["transformers is not installed"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="t,d", help="t (time to quality), d (decode), comma-separated")
    ap.add_argument("--data", default=str(time_to_quality.DEFAULT_DATA), help="Tiny Shakespeare")
    ap.add_argument("--json", metavar="FILE", help="also write the figures here")
    ap.add_argument("--no-reference", dest="reference", action="store_false",
                    help="(t) skip the reference recipe (saves about 3 minutes)")
    ap.add_argument("--no-budget", dest="budget", action="store_false", help="(t) skip the budget preset (3 minutes)")
    ap.add_argument("--seeds", default=SEEDS, help="(t) the preset's seeds, comma-separated (each about 40 s)")
    ap.add_argument("--t-overrides", default="", help="(t) extra `--section.key value` pairs for every run, quoted")
    ap.add_argument("--new-tokens", type=int, default=64, help="(d) tokens to decode per run")
    ap.add_argument("--repeats", type=int, default=2, help="(d) timed runs per side; the best counts")
    ap.add_argument("--threads", type=int, default=0, help="torch threads here and in (t)'s processes (0: default)")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes and few steps: checks the plumbing")
    ap.add_argument("--commit", help="the commit to record when the checkout has no .git")
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if unknown := [p for p in parts if p not in PARTS]:
        print(f"error: --parts {args.parts}: unknown part {', '.join(unknown)}; choose from t, d", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    json_path = Path(args.json) if args.json else None
    started = time.perf_counter()
    args.compile = "false"  # for gpu_suite.header's benefit: nothing is compiled here
    doc: dict[str, Any] = {"meta": gpu_suite.header(args, torch.device("cpu"), title="lmforge CPU suite"), "parts": {}}
    doc["meta"]["threads"] = torch.get_num_threads()
    runners = {"t": lambda: part_t(args), "d": lambda: part_d(args)}
    for key in parts:
        doc["parts"][key] = gpu_suite.run_part(key, runners[key], torch.device("cpu"), PARTS)
        gpu_suite.write_json(doc, json_path)
    doc["meta"]["total_s"] = round(time.perf_counter() - started, 1)
    gpu_suite.write_json(doc, json_path)
    print(f"\ntotal {doc['meta']['total_s']:.1f} s" + (f"; figures in {json_path}" if json_path else ""))
    return 0 if all(r["status"] == "ok" for r in doc["parts"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
