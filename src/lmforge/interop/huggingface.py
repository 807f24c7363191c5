"""`lmforge export --format hf` and reading a local Hugging Face checkpoint.

An export folder is what `save_pretrained` writes: config.json, model.safetensors,
generation_config.json and the tokenizer's files, so `AutoModelForCausalLM.from_pretrained(DIR)`
and `AutoTokenizer.from_pretrained(DIR)` load it with no lmforge code. Importing goes the
other way for GPT-2 and Llama-style folders (interop/hf_layouts.py says which options map).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lmforge.config import ModelConfig
from lmforge.errors import LmforgeError
from lmforge.interop.hf_layouts import from_hf, hf_config, layout_of, model_config, to_hf
from lmforge.interop.hf_tokenizer import load_hf_tokenizer, save_hf_tokenizer
from lmforge.paths import check_out_folder
from lmforge.tokenizers.base import Tokenizer


def export_hf(run_dir: str | Path, out: str | Path) -> Path:
    """Write the run's model and tokenizer to `out` in the Hugging Face layout its options map onto."""
    from lmforge.run import load

    run = load(run_dir, device="cpu")
    cfg, tok = run.config.model, run.tokenizer
    layout_of(cfg)  # a model with no layout fails before anything is written
    out = Path(out)
    check_out_folder(out, "a folder to export into")
    if (out / "config.yaml").exists():  # its model.safetensors and tokenizer.json would be replaced
        raise LmforgeError(f"'{out}' holds an lmforge run; pass --out with a new folder to export into")
    out.mkdir(parents=True, exist_ok=True)
    save_hf_tokenizer(tok, out, cfg.block_size)
    config = hf_config(cfg, tok.vocab_size, tok.specials)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    save_file(to_hf(run.model.state_dict(), cfg), str(out / "model.safetensors"), metadata={"format": "pt"})
    s = run.config.sample
    generation = {"do_sample": s.temperature > 0, "temperature": s.temperature, "top_k": s.top_k or None,
                  "top_p": s.top_p, "max_new_tokens": s.max_new_tokens,
                  **{f"{role}_token_id": i for role, i in tok.specials.items() if role in ("bos", "eos", "pad")}}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n", encoding="utf-8")
    return out


@dataclass
class HFCheckpoint:
    """A local Hugging Face model as lmforge sees it."""

    model: ModelConfig
    tokenizer: Tokenizer
    state: dict[str, torch.Tensor]


def is_hf_folder(path: str | Path) -> bool:
    return (Path(path) / "config.json").is_file()


def read_hf(folder: str | Path) -> HFCheckpoint:
    """Config, tokenizer and weights of a local GPT-2 or Llama-style folder (`save_pretrained`'s files)."""
    folder = Path(folder)
    if not is_hf_folder(folder):
        raise LmforgeError(f"'{folder}' has no config.json; pass a folder written by `save_pretrained` "
                           "(lmforge reads local folders only and never downloads)")
    try:
        hf = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise LmforgeError(f"'{folder / 'config.json'}' is not valid JSON ({exc}); restore it") from None
    cfg = model_config(hf)
    tok = load_hf_tokenizer(folder)
    if hf["vocab_size"] != tok.vocab_size:
        raise LmforgeError(f"the model has {hf['vocab_size']:,} token embeddings and its tokenizer {tok.vocab_size:,} "
                           "tokens; lmforge needs them equal")
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise LmforgeError(f"'{folder}' has no .safetensors weights; save with `save_pretrained(DIR)` "
                           "(safe_serialization, the default), since lmforge does not read pickled weights")
    tensors: dict[str, torch.Tensor] = {}
    for f in files:  # one file, or the shards of a large model
        try:
            tensors |= load_file(str(f))
        except (SafetensorError, OSError) as exc:
            raise LmforgeError(f"'{f}' is not a readable safetensors file ({exc}); restore it") from None
    return HFCheckpoint(cfg, tok, {k: v.float() for k, v in from_hf(tensors, cfg).items()})
