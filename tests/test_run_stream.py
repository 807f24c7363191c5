"""Streaming text whose tokens end mid-character (byte-level tokens) never shows a half character."""

import torch

from lmforge.config import Config
from lmforge.models.base import LanguageModel
from lmforge.run import Run
from lmforge.tokenizers import CharTokenizer


class Scripted(LanguageModel):
    """Greedy decoding of this model yields `script`, one token per step."""

    family = "scripted"

    def __init__(self, script: list[int], vocab_size: int):
        super().__init__()
        self.script, self.vocab_size = script, vocab_size

    def step(self, ids, state=None):
        n = 0 if state is None else state + 1
        logits = torch.zeros(1, self.vocab_size)
        logits[0, self.script[min(n, len(self.script) - 1)]] = 1.0
        return logits, n


def test_stream_waits_for_the_rest_of_a_character():
    tok = CharTokenizer.train("ab", unknown="bytes")
    script = tok.encode("é日a")  # 2 + 3 byte tokens, then a character
    assert len(script) == 6
    run = Run(path=None, config=Config(), tokenizer=tok, model=Scripted(script, tok.vocab_size), device=torch.device("cpu"))
    pieces = list(run.stream("a", max_new_tokens=6, greedy=True))
    assert "".join(pieces) == "é日a" and not any("\ufffd" in p for p in pieces)
    assert list(run.stream("a", max_new_tokens=1, greedy=True)) == ["\ufffd"]  # cut off by the limit: shown as is
