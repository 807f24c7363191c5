"""The speed figures that matter on a laptop-class CPU (two cores), in one command.

    python benchmarks/cpu_suite.py --data ../shared/data/tinyshakespeare.txt --json cpu_suite.json

(t) time to quality: `lmforge train --preset shakespeare-char-cpu` as a fresh process,
    seconds from process start to the first eval with val loss ≤ 1.88 (nats/char over
    the whole val split), and the best val loss logged within 85 s. In the same run,
    side by side, the reference recipe (the preset this one replaced: 4 layers × 128,
    learned positions, GELU, AdamW at 3e-3 for 1000 steps), so the ratio of the two
    times survives a noisy, shared machine.
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

PRESET, TARGET, WITHIN_S = "shakespeare-char-cpu", 1.88, 85.0
# The recipe shakespeare-char-cpu replaced (issue 2's preset), as overrides of the new one.
REFERENCE = ["--model.n_layer", "4", "--model.n_head", "4", "--model.n_embd", "128", "--model.positions", "learned",
             "--model.mlp", "gelu", "--train.optimizer", "adamw", "--train.lr", "3e-3", "--train.min_lr", "3e-4",
             "--train.warmup_steps", "50", "--train.max_steps", "1000", "--train.eval_interval", "100",
             "--train.eval_batch_size", "128", "--train.eval_train_tokens", "32768", "--train.max_seconds", "0",
             "--train.tensorboard", "true", "--sample.max_new_tokens", "200"]
SMOKE_TTQ = ["--train.max_steps", "40", "--train.eval_interval", "20", "--train.warmup_steps", "5", "--model.n_layer",
             "1", "--model.n_embd", "32", "--train.max_seconds", "0"]
PARTS = {"t": "time to quality, shakespeare-char-cpu against the reference recipe", "d": "decode, GPT-2-small shape"}


def part_t(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(args.data)
    if not data.is_file():
        raise gpu_suite.SuiteError(f"--data {data}: no such file; pass --data with the path to tinyshakespeare.txt")
    smoke = SMOKE_TTQ if args.smoke else []
    # a smoke run's few steps reach no real target, but a loop that trains beats the characters' frequencies
    target = time_to_quality.unigram_entropy(data) if args.smoke else TARGET
    recipes = {"preset": smoke}
    if args.reference:
        recipes["reference"] = REFERENCE + smoke
    env = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else None
    results = {}
    for name, overrides in recipes.items():  # the preset first: its figure is the one the goal is about
        overrides = [*overrides, "--train.device", "cpu", *shlex.split(args.t_overrides)]
        print(f"### {name}\n\n$", shlex.join(time_to_quality.train_command(PRESET, data, Path("<tmp>/run"), overrides)),
              flush=True)
        with tempfile.TemporaryDirectory(prefix="cpu-suite-ttq-") as tmp:
            results[name] = time_to_quality.run_preset(PRESET, data, target, overrides, out=tmp, within_s=WITHIN_S,
                                                       env=env)
        time_to_quality.print_report(results[name])
        if results[name]["error"]:
            print(f"lmforge train failed: {results[name]['error']}")
    times = {name: r.get("time_to_target_s") for name, r in results.items()}
    if times.get("preset") and times.get("reference"):
        ratio = times["reference"] / times["preset"]
        results["speedup"] = ratio
        print(f"\ntime to val ≤ {target:.4g}: preset {times['preset']:.1f} s, reference {times['reference']:.1f} s "
              f"({ratio:.2f}× faster)")
    if any(r["error"] for r in results.values() if isinstance(r, dict)):
        results["error"] = "a training run failed (see above)"
    return results


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
    ap.add_argument("--t-overrides", default="", help="(t) extra `--section.key value` pairs for both runs, quoted")
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
