"""Copy an lmforge transformer into Hugging Face's `GPT2LMHeadModel`, so both compute the same logits.

For side-by-side measurements (benchmarks/decode.py) and the tests that check lmforge's
decoding against `transformers`. Needs `transformers` (a dev-only dependency).

The architectures agree once configured alike: learned positions, pre-norm blocks,
LayerNorm (eps 1e-5), exact GELU (GPT-2's default is the tanh approximation, so the twin
uses `activation_function="gelu"`), tied output head. GPT-2's `Conv1D` stores weights as
(in, out), the transpose of `nn.Linear`. An lmforge model built with `bias=False` gets
zero biases in the twin.
"""

from __future__ import annotations

import torch


def to_gpt2(model):
    """A `GPT2LMHeadModel` (eval mode, float32) holding `model`'s weights."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = model.cfg
    hf = GPT2LMHeadModel(GPT2Config(
        vocab_size=model.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, activation_function="gelu", layer_norm_epsilon=1e-5,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None, pad_token_id=0,
    )).eval()

    def copy(dst_weight, dst_bias, src, transpose=False):
        with torch.no_grad():
            dst_weight.copy_(src.weight.t() if transpose else src.weight)
            dst_bias.copy_(src.bias if src.bias is not None else torch.zeros_like(dst_bias))

    t = hf.transformer
    with torch.no_grad():
        t.wte.weight.copy_(model.tok_emb.weight)
        t.wpe.weight.copy_(model.pos_emb.weight)
    for mine, theirs in zip(model.blocks, t.h):
        copy(theirs.ln_1.weight, theirs.ln_1.bias, mine.norm1)
        copy(theirs.attn.c_attn.weight, theirs.attn.c_attn.bias, mine.attn.qkv, transpose=True)
        copy(theirs.attn.c_proj.weight, theirs.attn.c_proj.bias, mine.attn.proj, transpose=True)
        copy(theirs.ln_2.weight, theirs.ln_2.bias, mine.norm2)
        copy(theirs.mlp.c_fc.weight, theirs.mlp.c_fc.bias, mine.mlp.fc, transpose=True)
        copy(theirs.mlp.c_proj.weight, theirs.mlp.c_proj.bias, mine.mlp.proj, transpose=True)
    copy(t.ln_f.weight, t.ln_f.bias, model.norm)
    assert hf.lm_head.weight.data_ptr() == t.wte.weight.data_ptr(), "GPT-2's output head should be tied"
    return hf


def max_logit_gap(model, hf, ids: torch.Tensor) -> float:
    """Largest difference between the two models' logits on `ids` (B, T)."""
    with torch.no_grad():
        return (model(ids).float() - hf(ids).logits.float()).abs().max().item()
