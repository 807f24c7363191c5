"""Tokenizers to and from Hugging Face's files (`tokenizer.json` + `tokenizer_config.json`).

- `bpe` exports as it is: its pipeline already is a `tokenizers` JSON (GPT-2's byte-level
  BPE), with the special tokens added as special.
- `char` exports as a `tokenizers` BPE with no merges: every character a token at its
  lmforge id, characters outside the vocabulary replaced by the fallback character (the
  `replace` policy) or spelled as byte tokens `<0xNN>` (the `bytes` policy, `byte_fallback`),
  and a decoder that joins tokens without spaces.
- `word` does not export: lmforge keeps the space of an unknown " word" as its own token,
  which no Hugging Face model reproduces, so the ids would silently differ.

One difference is by design: lmforge reads a special token's spelling inside a text as
text, `transformers` as the special token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.tokenizers.base import Tokenizer
from lmforge.tokenizers.bpe import BpeTokenizer, tiktoken_ranks
from lmforge.tokenizers.char import N_BYTES, CharTokenizer


def _added(specials: dict[str, int], text: dict[str, str]) -> list[dict[str, Any]]:
    return [{"id": specials[role], "content": text[role], "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True} for role in specials]


def _char_pipeline(tok: CharTokenizer) -> dict[str, Any]:
    vocab = {c: i for i, c in enumerate(tok.chars)}
    byte_fallback = tok.unknown == "bytes"
    if byte_fallback:
        vocab |= {f"<0x{b:02X}>": tok.byte_offset + b for b in range(N_BYTES)}
    decoders = ([{"type": "ByteFallback"}] if byte_fallback else []) + [{"type": "Fuse"}]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
            # each character its own word, so no merge can ever span two (there are none anyway)
            "pre_tokenizer": {"type": "Split", "pattern": {"Regex": r"[\s\S]"}, "behavior": "Isolated",
                              "invert": False},
            "post_processor": None, "decoder": {"type": "Sequence", "decoders": decoders},
            "model": {"type": "BPE", "dropout": None, "unk_token": None if byte_fallback else tok.fallback,
                      "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": False,
                      "byte_fallback": byte_fallback, "ignore_merges": False, "vocab": vocab, "merges": []}}


def save_hf_tokenizer(tok: Tokenizer, out: Path, max_length: int) -> None:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json for `AutoTokenizer`."""
    if isinstance(tok, BpeTokenizer):
        pipeline = json.loads(json.dumps(tok.hf_pipeline))
    elif isinstance(tok, CharTokenizer):
        pipeline = _char_pipeline(tok)
    else:
        raise LmforgeError(f"a {tok.kind} tokenizer has no Hugging Face form that gives the same ids (an unknown "
                           "word keeps its space here); train with --data.tokenizer bpe or char to export")
    specials = tok.specials
    added = {t["id"] for t in pipeline["added_tokens"]}
    pipeline["added_tokens"] += [t for t in _added(specials, tok.special_text) if t["id"] not in added]
    (out / "tokenizer.json").write_text(json.dumps(pipeline, ensure_ascii=False), encoding="utf-8")
    named = {f"{role}_token": tok.special_text[role] for role in specials}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_length,
              "clean_up_tokenization_spaces": False, "add_bos_token": False, "add_eos_token": False, **named}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / "special_tokens_map.json").write_text(json.dumps(named, indent=2, ensure_ascii=False), encoding="utf-8")


def load_hf_tokenizer(folder: Path) -> BpeTokenizer:
    """A byte-level BPE `tokenizer.json` (GPT-2's pipeline: GPT-2 and Llama-style models trained that way) as a
    lmforge `bpe` tokenizer, its EOS named by tokenizer_config.json."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise LmforgeError(f"'{folder}' has no tokenizer.json; save the tokenizer there with "
                           "`tokenizer.save_pretrained(DIR)` (a fast tokenizer)")
    try:
        pipeline = json.loads(path.read_text(encoding="utf-8"))
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise LmforgeError(f"'{path}' is not valid JSON ({exc}); restore the file") from None
    added = {t["content"] for t in pipeline.get("added_tokens", [])}
    specials = {}
    for role in ("bos", "eos", "pad", "unk"):
        text = config.get(f"{role}_token")
        text = text.get("content") if isinstance(text, dict) else text
        if text in added and text not in specials.values():
            specials[role] = text
    try:  # tiktoken_ranks raises with advice for lmforge's own files (retrain); an imported one needs its own
        tiktoken_ranks(pipeline, specials.values())
    except LmforgeError:
        raise LmforgeError(f"'{path}' is not a byte-level BPE with GPT-2's pre-tokenizer (e.g. a SentencePiece "
                           "tokenizer, or a char run's export); lmforge imports byte-level BPE tokenizers only: "
                           "start from an lmforge run directory instead") from None
    return BpeTokenizer(pipeline, specials)
