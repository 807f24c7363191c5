"""The two Hugging Face layouts a lmforge transformer maps onto, weight by weight.

- **GPT-2** (`GPT2LMHeadModel`): learned positions, LayerNorm, a GELU MLP of 4C. GPT-2
  always has biases; a lmforge model without them exports zeros. Its linear layers are
  `Conv1D`, which stores the weight transposed (in, out), hence the `.T` below.
- **Llama** (`LlamaForCausalLM`): rotary positions, RMSNorm, a SwiGLU MLP, no biases.
  lmforge's rotary pairs channel i with i + hs/2, as Llama's `rotate_half` does, so
  queries and keys need no permutation; the fused `qkv` and `fc` matrices split into
  `q/k/v_proj` and `gate/up_proj` by rows.

A model with any other mix (the default preset's rope + LayerNorm + squared ReLU, QK-norm,
no positions) has no layout here, and `layout_of` says which option to change.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lmforge.config import ModelConfig
from lmforge.errors import LmforgeError

GPT2 = {"positions": "learned", "norm": "layernorm", "mlp": "gelu"}
LLAMA = {"positions": "rope", "norm": "rmsnorm", "mlp": "swiglu"}
LAYERNORM_EPS, RMSNORM_EPS = 1e-5, 1e-6  # models/layers.py: nn.LayerNorm's default and the RMSNorm eps


def layout_of(cfg: ModelConfig) -> str:
    """`gpt2` or `llama`, or a one-line error naming what neither layout expresses."""
    if cfg.family != "transformer":
        raise LmforgeError(f"only transformers export to Hugging Face; a {cfg.family} model has no transformers "
                           "layout (train with --model.family transformer)")
    if cfg.lora_rank:
        raise LmforgeError("this run has LoRA adapters; fold them in first with `lmforge merge RUN_DIR --out DIR`, "
                           "then export that run")
    if cfg.qk_norm:
        raise LmforgeError("--model.qk_norm has no GPT-2 or Llama equivalent; train with --model.qk_norm false")
    options = {"positions": cfg.positions, "norm": cfg.norm, "mlp": cfg.mlp}
    for name, layout in (("gpt2", GPT2), ("llama", LLAMA)):
        if options == layout:
            return name
    want = " ".join(f"--model.{k} {v}" for k, v in GPT2.items())
    want_llama = " ".join(f"--model.{k} {v}" for k, v in LLAMA.items())
    have = ", ".join(f"{k} {v}" for k, v in options.items())
    raise LmforgeError(f"this model ({have}) has no Hugging Face layout; train with `{want}` (GPT-2) or "
                       f"`{want_llama}` (Llama)")


def swiglu_hidden(n_embd: int) -> int:
    """The SwiGLU hidden size models/transformer.py gives a width (2/3 of 4C, rounded up to a multiple of 8)."""
    return 8 * math.ceil(8 * n_embd / 3 / 8)


# ------------------------------------------------------------------ config.json


def hf_config(cfg: ModelConfig, vocab_size: int, specials: dict[str, int]) -> dict[str, Any]:
    """config.json for `cfg`'s layout; `specials` maps roles (bos, eos, pad) to ids."""
    layout = layout_of(cfg)
    ids = {f"{role}_token_id": specials.get(role) for role in ("bos", "eos", "pad")}
    common = {"vocab_size": vocab_size, "tie_word_embeddings": cfg.tie_weights, "torch_dtype": "float32", **ids}
    if layout == "gpt2":
        return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_positions": cfg.block_size,
                "n_ctx": cfg.block_size, "n_embd": cfg.n_embd, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
                "n_inner": 4 * cfg.n_embd, "activation_function": "gelu", "layer_norm_epsilon": LAYERNORM_EPS,
                "resid_pdrop": cfg.dropout, "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout,
                "scale_attn_weights": True, "use_cache": True, **common}
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": cfg.n_embd,
            "intermediate_size": swiglu_hidden(cfg.n_embd), "num_hidden_layers": cfg.n_layer,
            "num_attention_heads": cfg.n_head, "num_key_value_heads": cfg.n_head,
            "head_dim": cfg.n_embd // cfg.n_head, "hidden_act": "silu", "max_position_embeddings": cfg.block_size,
            "rms_norm_eps": RMSNORM_EPS, "rope_theta": cfg.rope_base,
            "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_base},
            "attention_bias": cfg.bias, "mlp_bias": cfg.bias, "attention_dropout": cfg.dropout, "use_cache": True,
            **common}


def model_config(hf: dict[str, Any]) -> ModelConfig:
    """The lmforge ModelConfig of a GPT-2 or Llama config.json (a one-line error for anything else)."""
    kind = hf.get("model_type")
    tie = hf.get("tie_word_embeddings", kind == "gpt2")  # absent: transformers' default (GPT-2 ties, Llama not)
    if kind == "gpt2":
        act = hf.get("activation_function", "gelu_new")
        if act != "gelu":
            raise LmforgeError(f"this GPT-2 uses activation '{act}'; lmforge's GELU is the exact one ('gelu'), so "
                               "only GPT-2 models with activation_function 'gelu' import")
        n_embd = hf["n_embd"]
        if (hf.get("n_inner") or 4 * n_embd) != 4 * n_embd:
            raise LmforgeError(f"this GPT-2's MLP has {hf['n_inner']} hidden units; lmforge's has 4 × n_embd")
        return ModelConfig(family="transformer", n_layer=hf["n_layer"], n_head=hf["n_head"], n_embd=n_embd,
                           block_size=hf["n_positions"], bias=True, tie_weights=tie, **GPT2)
    if kind == "llama":
        n_embd, n_head = hf["hidden_size"], hf["num_attention_heads"]
        if hf.get("num_key_value_heads", n_head) != n_head:
            raise LmforgeError("this Llama shares keys and values between heads (grouped-query attention), which "
                               "lmforge's attention does not; only num_key_value_heads == num_attention_heads imports")
        if hf.get("head_dim", n_embd // n_head) != n_embd // n_head or hf["intermediate_size"] != swiglu_hidden(n_embd):
            raise LmforgeError("this Llama's head_dim or intermediate_size differs from lmforge's (hidden_size / heads "
                               f"and {swiglu_hidden(n_embd)}); it cannot import")
        rope = hf.get("rope_parameters") or {}
        if rope.get("rope_type", "default") != "default" or hf.get("rope_scaling"):
            raise LmforgeError("this Llama scales its rotary positions; lmforge imports the default RoPE only")
        if hf.get("attention_bias", False) != hf.get("mlp_bias", False):
            raise LmforgeError("this Llama has biases in attention or the MLP but not both; lmforge cannot mix them")
        return ModelConfig(family="transformer", n_layer=hf["num_hidden_layers"], n_head=n_head, n_embd=n_embd,
                           block_size=hf["max_position_embeddings"], bias=hf.get("attention_bias", False),
                           tie_weights=tie, rope_base=rope.get("rope_theta", hf.get("rope_theta", 10000.0)), **LLAMA)
    raise LmforgeError(f"config.json's model_type is '{kind}'; lmforge imports 'gpt2' and 'llama' models")


# ------------------------------------------------------------------ weights


def _gpt2_names(n_layer: int) -> list[tuple[str, str, bool]]:
    """(lmforge name, Hugging Face name, transposed) for every GPT-2 weight; `.bias` names follow `.weight`."""
    pairs = [("tok_emb.weight", "transformer.wte.weight", False), ("pos_emb.weight", "transformer.wpe.weight", False)]
    for i in range(n_layer):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        for a, b, t in (("norm1", "ln_1", False), ("attn.qkv", "attn.c_attn", True), ("attn.proj", "attn.c_proj", True),
                        ("norm2", "ln_2", False), ("mlp.fc", "mlp.c_fc", True), ("mlp.proj", "mlp.c_proj", True)):
            pairs += [(ours + a + ".weight", theirs + b + ".weight", t), (ours + a + ".bias", theirs + b + ".bias", False)]
    pairs += [("norm.weight", "transformer.ln_f.weight", False), ("norm.bias", "transformer.ln_f.bias", False)]
    return pairs


def _bias_like(state: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """A zero bias for a `.bias` lmforge left out (bias off): GPT-2 always has one."""
    weight = state[name.removesuffix(".bias") + ".weight"]
    return torch.zeros(weight.size(0), dtype=weight.dtype)


def to_hf(state: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """lmforge's state dict → the Hugging Face layout's tensors (tied head left out, as `transformers` saves it)."""
    out: dict[str, torch.Tensor] = {}
    if layout_of(cfg) == "gpt2":
        for ours, theirs, transposed in _gpt2_names(cfg.n_layer):
            tensor = state[ours] if ours in state else _bias_like(state, ours)
            out[theirs] = tensor.T if transposed else tensor
    else:
        C, hidden = cfg.n_embd, swiglu_hidden(cfg.n_embd)
        out["model.embed_tokens.weight"] = state["tok_emb.weight"]
        for i in range(cfg.n_layer):
            ours, theirs = f"blocks.{i}.", f"model.layers.{i}."
            out[theirs + "input_layernorm.weight"] = state[ours + "norm1.weight"]
            out[theirs + "post_attention_layernorm.weight"] = state[ours + "norm2.weight"]
            for kind in (("weight", "bias") if cfg.bias else ("weight",)):
                q, k, v = state[ours + f"attn.qkv.{kind}"].split(C)
                gate, up = state[ours + f"mlp.fc.{kind}"].split(hidden)
                out |= {theirs + f"self_attn.q_proj.{kind}": q, theirs + f"self_attn.k_proj.{kind}": k,
                        theirs + f"self_attn.v_proj.{kind}": v,
                        theirs + f"self_attn.o_proj.{kind}": state[ours + f"attn.proj.{kind}"],
                        theirs + f"mlp.gate_proj.{kind}": gate, theirs + f"mlp.up_proj.{kind}": up,
                        theirs + f"mlp.down_proj.{kind}": state[ours + f"mlp.proj.{kind}"]}
        out["model.norm.weight"] = state["norm.weight"]
    if not cfg.tie_weights:
        out["lm_head.weight"] = state["head.weight"]
    return {name: t.detach().contiguous().cpu() for name, t in out.items()}


def from_hf(tensors: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """The inverse of `to_hf`: a Hugging Face checkpoint's tensors → lmforge's state dict (head tied back if tied)."""
    def take(name: str) -> torch.Tensor:
        if name not in tensors:
            raise LmforgeError(f"the checkpoint has no tensor '{name}'; it is not a complete {layout_of(cfg)} model")
        return tensors[name]

    state: dict[str, torch.Tensor] = {}
    if layout_of(cfg) == "gpt2":
        for ours, theirs, transposed in _gpt2_names(cfg.n_layer):
            state[ours] = take(theirs).T if transposed else take(theirs)
    else:
        state["tok_emb.weight"] = take("model.embed_tokens.weight")
        for i in range(cfg.n_layer):
            ours, theirs = f"blocks.{i}.", f"model.layers.{i}."
            state[ours + "norm1.weight"] = take(theirs + "input_layernorm.weight")
            state[ours + "norm2.weight"] = take(theirs + "post_attention_layernorm.weight")
            for kind in (("weight", "bias") if cfg.bias else ("weight",)):
                attn = [take(theirs + f"self_attn.{p}_proj.{kind}") for p in "qkv"]
                state[ours + f"attn.qkv.{kind}"] = torch.cat(attn)
                state[ours + f"attn.proj.{kind}"] = take(theirs + f"self_attn.o_proj.{kind}")
                state[ours + f"mlp.fc.{kind}"] = torch.cat([take(theirs + f"mlp.{p}_proj.{kind}") for p in ("gate", "up")])
                state[ours + f"mlp.proj.{kind}"] = take(theirs + f"mlp.down_proj.{kind}")
        state["norm.weight"] = take("model.norm.weight")
    state["head.weight"] = state["tok_emb.weight"] if cfg.tie_weights else take("lm_head.weight")
    return {name: t.contiguous() for name, t in state.items()}
