"""`lmforge export`: write a run in a layout other tools load (Hugging Face `transformers`)."""

from __future__ import annotations

import argparse
import sys

HELP = "export a run for Hugging Face transformers (config.json, model.safetensors, tokenizer)"
DESCRIPTION = ("Write RUN_DIR's transformer and tokenizer as a folder that transformers' AutoModelForCausalLM and "
               "AutoTokenizer load: the GPT-2 layout for learned positions + LayerNorm + GELU, the Llama layout for "
               "RoPE + RMSNorm + SwiGLU. Other options, the n-gram and RNN families and the word tokenizer are refused "
               "with the reason.")
EXAMPLES = """examples:
  lmforge train --model.positions rope --model.norm rmsnorm --model.mlp swiglu --out runs/llama-like
  lmforge export runs/llama-like --format hf --out exported/llama-like
  python -c "from transformers import AutoModelForCausalLM; AutoModelForCausalLM.from_pretrained('exported/llama-like')\""""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `lmforge train`")
    p.add_argument("--format", default="hf", choices=["hf"], help="hf: Hugging Face transformers (the only format)")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.interop.huggingface import export_hf

    out = export_hf(args.run_dir, args.out)
    print(f"saved {out} (load it with AutoModelForCausalLM.from_pretrained('{out}'))", file=sys.stderr)
    return 0
