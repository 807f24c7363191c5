"""Decode speed: lmforge against Hugging Face `transformers`, same weights, same run.

A GPT-2-small-shaped model (12 layers, 12 heads, 768 wide, context 1024, vocabulary
50304, biases on as in GPT-2, random weights) is copied into `GPT2LMHeadModel`; the
script checks that both give the same logits, then times greedy decoding of
--new-tokens tokens after a --prompt-len token prompt at each batch size: lmforge's
`decode` (eager on the CPU, the compiled static-shape step on CUDA by default) and
`GPT2LMHeadModel.generate` (its default dynamic KV cache). Tokens/s counts new tokens
of every row. Each figure is the best of --repeats timed runs after a warm-up, and the
two sides alternate, so that a busy machine slows both alike.

    python benchmarks/decode.py                                 # CPU, 256 tokens, batch 1 and 8
    python benchmarks/decode.py --new-tokens 64 --repeats 1     # a quicker look
    python benchmarks/decode.py --quantize int8                 # also lmforge with int8 weights (CPU)
    python benchmarks/decode.py --device cuda --dtype bfloat16  # the GPU figures

benchmarks/gpu_suite.py calls `build` and `measure` itself.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpt2_twin import max_logit_gap, to_gpt2

from lmforge.config import DecodeConfig, ModelConfig
from lmforge.generation import decode
from lmforge.generation.quantize import quantize_model
from lmforge.models import build_model

VOCAB = 50304


def gpt2_small(vocab_size: int = VOCAB, **changes) -> tuple[ModelConfig, int]:
    """GPT-2 small's shape (biases on, as in GPT-2) and vocabulary size; `changes` shrink it for smoke tests."""
    shape = {"n_layer": 12, "n_head": 12, "n_embd": 768, "block_size": 1024, "bias": True}
    return ModelConfig(**{**shape, **changes}), vocab_size


def build(device: torch.device, dtype: torch.dtype, shape: tuple[ModelConfig, int] | None = None, twin: bool = True):
    """(lmforge model, its `GPT2LMHeadModel` twin, largest logit gap), both in eval mode on `device` in `dtype`.

    The twin is built and checked in float32 on the CPU before moving. `twin=False` builds
    lmforge's model alone (twin and gap None), for machines without `transformers`.
    """
    torch.manual_seed(0)
    model = build_model(*(shape or gpt2_small())).eval()
    with torch.no_grad():  # non-zero biases and norm gains, so that the weight mapping is really checked
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.02)
            elif "norm" in name:
                p.normal_(1.0, 0.05)
    if not twin:
        return model.to(device, dtype), None, None
    hf = to_gpt2(model)
    ids = torch.randint(model.vocab_size, (2, min(32, model.cfg.block_size)), generator=torch.Generator().manual_seed(1))
    gap = max_logit_gap(model, hf, ids)
    assert gap < 1e-4, f"lmforge and GPT2LMHeadModel disagree on the logits by {gap}"
    return model.to(device, dtype), hf.to(device, dtype), gap


def lmforge_tokens(model, prompts: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    cfg = DecodeConfig(max_new_tokens=n, greedy=True, mode=mode)
    return torch.stack([s.ids for s in decode(model, prompts, cfg)], dim=1)


def hf_tokens(hf, prompts: torch.Tensor, n: int) -> torch.Tensor:
    with torch.inference_mode():
        out = hf.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=False, max_new_tokens=n,
                          min_new_tokens=0, eos_token_id=None, pad_token_id=0)
    return out[:, prompts.size(1) :]


def timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def measure(model, hf, device: torch.device, batch_sizes: list[int], new_tokens: int, prompt_len: int = 16,
            repeats: int = 2, mode: str = "auto") -> list[dict]:
    """Tokens/s of greedy decoding at each batch size: lmforge's `decode` against `hf.generate` (skipped when
    `hf` is None). Each side's best of `repeats` timed runs after a warm-up; the sides alternate."""
    vocab, n = model.vocab_size, new_tokens
    rows = []
    for batch in batch_sizes:
        prompts = torch.randint(vocab, (batch, prompt_len), generator=torch.Generator().manual_seed(batch))
        prompts = prompts.to(device)
        sides = {"lmforge": lambda k, p=prompts: lmforge_tokens(model, p, k, mode)}  # k new tokens → (B, k) ids
        if hf is not None:
            sides["transformers"] = lambda k, p=prompts: hf_tokens(hf, p, k)
        for fn in sides.values():  # warm-up (on CUDA: compiles lmforge's step)
            fn(min(n, 8))
        best, out = dict.fromkeys(sides, float("inf")), {}
        for _ in range(repeats):
            for side, fn in sides.items():
                t, out[side] = timed(lambda fn=fn: fn(n), device)
                best[side] = min(best[side], t)
        row = {"batch": batch, "new_tokens": n, "lmforge_tok_s": batch * n / best["lmforge"],
               "transformers_tok_s": None, "tokens_agree": None, "speedup": None}
        if hf is not None:
            same = (out["lmforge"] == out["transformers"]).all(dim=0)
            row["tokens_agree"] = n if bool(same.all()) else int((~same).nonzero()[0])
            row["transformers_tok_s"] = batch * n / best["transformers"]
            row["speedup"] = row["lmforge_tok_s"] / row["transformers_tok_s"]
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    print("| batch | lmforge tok/s | transformers tok/s | lmforge / transformers | greedy tokens identical |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["transformers_tok_s"] is None:
            print(f"| {r['batch']} | {r['lmforge_tok_s']:,.1f} | — | — | — |")
            continue
        print(f"| {r['batch']} | {r['lmforge_tok_s']:,.1f} | {r['transformers_tok_s']:,.1f} | {r['speedup']:.2f}× "
              f"| first {r['tokens_agree']} of {r['new_tokens']} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per side and batch size; the best counts")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--mode", default="auto", help="lmforge decode mode: auto | eager | static | compiled")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--quantize", default="none", choices=["none", "int8"],
                    help="lmforge's weights: int8 also times an int8 copy (CPU only) against the same transformers")
    ap.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    model, hf, gap = build(device, dtype)
    n = args.new_tokens
    print(f"# decode: GPT-2-small shape, random weights, {args.dtype} on {device} "
          f"({torch.get_num_threads()} threads), prompt {args.prompt_len}, {n} new tokens, greedy; "
          f"logit gap lmforge vs GPT2LMHeadModel {gap:.1e}")
    batches = [int(b) for b in args.batch_sizes.split(",")]
    rows = measure(model, hf, device, batches, n, args.prompt_len, args.repeats, args.mode)
    print_table(rows)
    if args.quantize == "int8":
        print("\nlmforge with int8 weights (`--quantize int8`), against the same float32 transformers:")
        rows8 = measure(quantize_model(model, "int8"), hf, device, batches, n, args.prompt_len, args.repeats, args.mode)
        print_table(rows8)
        rows += [{**r, "quantize": "int8"} for r in rows8]
    if args.json:
        meta = {"device": str(device), "dtype": args.dtype, "quantize": args.quantize, "threads": torch.get_num_threads(), "torch": torch.__version__,
                "python": platform.python_version(), "logit_gap": gap}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
