"""Byte-level BPE (GPT-2's pipeline; docs/01-tokens.md): any string round-trips, with no unknown token.

Training is Hugging Face `tokenizers`' (Rust), and its pipeline is stored inside lmforge's JSON, so a
`tokenizer.json` stays one self-contained file. Encoding goes through tiktoken, several times faster: a
`tiktoken.Encoding` of the same vocabulary, each token's rank its id. tiktoken merges the adjacent pair
whose joined bytes have the lowest rank, Hugging Face the pair listed first among the merges; the two
agree when the ids of merged tokens follow merge order, one merge per token, as BPE training writes
them (and GPT-2's files). A vocabulary that breaks this, or a pipeline that is not GPT-2's, is refused.

`load_gpt2` reads GPT-2's vocabulary from its released encoder.json and vocab.bpe; `gpt2_tiktoken`
builds tiktoken's own encoding from the same files, offline: the reference tests and benchmarks use.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import regex

from lmforge.errors import LmforgeError
from lmforge.tokenizers.base import SPECIAL_TEXT, Tokenizer, as_texts, check_specials, check_text

# GPT-2's pre-tokenizer, also Hugging Face's ByteLevel(use_regex=True) and tiktoken's "gpt2" pattern
PATTERN = regex.compile(r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
DEFAULT_SPECIALS = {"eos": SPECIAL_TEXT["eos"]}
# Hugging Face BPE options that tiktoken has no equivalent of: each must be unset for tiktoken to encode
_HF_ONLY_OPTIONS = ("dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "ignore_merges")
# GPT-2's reversible map from each printable character of a vocabulary entry to the byte it stands for; the
# unprintable bytes get the characters from U+0100 on
_PRINTABLE = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
_BYTE_OF = {chr(b): b for b in _PRINTABLE} | {
    chr(256 + i): b for i, b in enumerate(b for b in range(256) if b not in _PRINTABLE)}


def tiktoken_ranks(pipeline: dict[str, Any], specials: Iterable[str]) -> dict[bytes, int]:
    """tiktoken's mergeable ranks for a Hugging Face byte-level BPE pipeline: each token's bytes → its id.

    Refused where tiktoken would not give Hugging Face's ids (the module docstring): a pipeline other than
    GPT-2's, a byte missing from the vocabulary, a token that no merge makes, merges out of id order.
    """
    model, pre = pipeline.get("model") or {}, pipeline.get("pre_tokenizer") or {}
    vocab = {token: i for token, i in model.get("vocab", {}).items() if token not in set(specials)}
    merged = [vocab.get("".join(m.split(" ") if isinstance(m, str) else m)) for m in model.get("merges", [])]
    if (pipeline.get("normalizer") is not None or model.get("type") != "BPE"
            or any(model.get(option) for option in _HF_ONLY_OPTIONS)
            or (pre.get("type"), pre.get("add_prefix_space"), pre.get("use_regex", True)) != ("ByteLevel", False, True)
            or not set("".join(vocab)) <= _BYTE_OF.keys()
            or None in merged or any(a >= b for a, b in zip(merged, merged[1:]))
            or sum(len(token) == 1 for token in vocab) != 256 or 256 + len(merged) != len(vocab)):
        raise LmforgeError("this BPE tokenizer is not byte-level BPE with merges in id order, which lmforge encodes "
                           "with tiktoken; retrain it with `lmforge tokenizer train --kind bpe`")
    return {bytes(map(_BYTE_OF.__getitem__, token)): i for token, i in vocab.items()}


def byte_level(model: Any) -> Any:
    """A Hugging Face tokenizer of `model` in GPT-2's byte-level pipeline (the pattern, then bytes as characters)."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, pre_tokenizers

    hf = HFTokenizer(model)
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    return hf


class BpeTokenizer(Tokenizer):
    kind = "bpe"

    def __init__(self, hf_pipeline: dict[str, Any], specials: dict[str, str] | None = None):
        import tiktoken

        self.hf_pipeline = hf_pipeline
        self.special_text = check_specials(DEFAULT_SPECIALS if specials is None else specials)
        vocab = hf_pipeline.get("model", {}).get("vocab", {})
        for role, text in self.special_text.items():
            if text not in vocab:
                raise LmforgeError(f"special token {text!r} ({role}) is not in this BPE vocabulary; retrain it")
        self.specials = {role: vocab[text] for role, text in self.special_text.items()}
        ranks = tiktoken_ranks(hf_pipeline, self.special_text.values())
        self._tiktoken = tiktoken.Encoding("lmforge-bpe", pat_str=PATTERN.pattern, mergeable_ranks=ranks,
                                           special_tokens={text: vocab[text] for text in self.special_text.values()})

    @classmethod
    def train(cls, texts: str | Iterable[str], vocab_size: int, specials: dict[str, str] | None = None,
              min_frequency: int = 2) -> BpeTokenizer:
        from tokenizers import models, pre_tokenizers, trainers

        specials = DEFAULT_SPECIALS if specials is None else check_specials(specials)
        least = 256 + len(specials) + 1
        if vocab_size < least:
            raise LmforgeError(f"--vocab-size {vocab_size} is too small for byte-level BPE: it starts from 256 byte "
                               f"tokens and {len(specials)} special(s); use at least {least}")
        hf = byte_level(models.BPE())
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(specials.values()),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        )
        hf.train_from_iterator((check_text(t) for t in as_texts(texts)), trainer)
        return cls(json.loads(hf.to_str()), specials)

    @property
    def vocab_size(self) -> int:
        return self._tiktoken.n_vocab

    def encode_array(self, text: str) -> np.ndarray:
        """The ids of `text`. A special token's spelling inside it is text (`disallowed_special=()`)."""
        try:
            ids = self._tiktoken.encode_to_numpy(text, disallowed_special=())
        except UnicodeEncodeError:  # a lone surrogate (the call refuses it, where encode_ordinary would replace it)
            check_text(text)  # raises, naming it
            raise
        return self._ids(ids)

    def decode(self, ids: list[int]) -> str:
        return self._tiktoken.decode_bytes(ids).decode("utf-8", "replace")

    def token_bytes(self, token_id: int) -> bytes:
        return self._tiktoken.decode_single_token_bytes(token_id)

    @cached_property
    def hf(self):
        """Hugging Face's encoder of the same pipeline: the reference that tests and benchmarks hold tiktoken to."""
        from tokenizers import Tokenizer as HFTokenizer

        hf = HFTokenizer.from_str(json.dumps(self.hf_pipeline))
        hf.encode_special_tokens = True  # "<|endoftext|>" inside a text is text, never the special id
        return hf

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "version": 1, "specials": self.special_text, "hf_tokenizer": self.hf_pipeline}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BpeTokenizer:
        return cls(data["hf_tokenizer"], data.get("specials"))


# ---------------------------------------------------------------------- GPT-2's files

GPT2_EOS = "<|endoftext|>"
GPT2_FILES = ("encoder.json", "vocab.bpe")


def is_gpt2_folder(path: str | Path) -> bool:
    return all((Path(path) / name).is_file() for name in GPT2_FILES)


def read_gpt2_files(folder: str | Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The vocabulary (token → id) and merges of a folder holding encoder.json and vocab.bpe."""
    from tokenizers import models

    folder = Path(folder)
    if not is_gpt2_folder(folder):
        raise LmforgeError(f"'{folder}' does not hold GPT-2's encoder.json and vocab.bpe; pass the folder with both files")
    try:
        return models.BPE.read_file(str(folder / "encoder.json"), str(folder / "vocab.bpe"))
    except Exception as exc:  # noqa: BLE001 - Hugging Face raises a bare Exception for a file it cannot parse
        raise LmforgeError(f"GPT-2 files in '{folder}' are corrupt ({exc}); restore them") from None


def load_gpt2(folder: str | Path) -> BpeTokenizer:
    """GPT-2's byte-level BPE: the same pipeline as a trained `bpe`, with GPT-2's vocabulary and merges."""
    from tokenizers import models

    vocab, merges = read_gpt2_files(folder)
    if GPT2_EOS not in vocab:
        raise LmforgeError(f"encoder.json in '{folder}' has no {GPT2_EOS} token; restore GPT-2's file")
    return BpeTokenizer(json.loads(byte_level(models.BPE(vocab, merges)).to_str()), {"eos": GPT2_EOS})


def gpt2_tiktoken(folder: str | Path):
    """tiktoken's own GPT-2 encoding, as `tiktoken.get_encoding("gpt2")` builds it (its file parser, its pattern), but
    offline from these files: the reference that tests and benchmarks hold `load_gpt2` to."""
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import ENDOFTEXT, r50k_pat_str

    read_gpt2_files(folder)  # the checks and errors of load_gpt2
    ranks = data_gym_to_mergeable_bpe_ranks(str(Path(folder) / "vocab.bpe"), str(Path(folder) / "encoder.json"))
    return tiktoken.Encoding("gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks, special_tokens={ENDOFTEXT: 50256})
