import math

import numpy as np
import torch

from lmforge.evaluation import evaluate_ids
from lmforge.models.base import LanguageModel
from lmforge.tokenizers import CharTokenizer


class FixedDistribution(LanguageModel):
    """Predicts the same distribution everywhere: loss is computable by hand."""

    family = "fixed"

    def __init__(self, probs):
        super().__init__()
        self.log_probs = torch.tensor(probs).log()

    def forward(self, ids):
        return self.log_probs.expand(*ids.shape, -1)


def test_loss_perplexity_and_bits_per_byte_by_hand():
    tok = CharTokenizer(["a", "é"])  # 'é' is two bytes in UTF-8
    text = "aéaaéa"
    ids = tok.encode_array(text)
    model = FixedDistribution([0.75, 0.25])
    result = evaluate_ids(model, tok, ids, block_size=2, batch_size=2, device=torch.device("cpu"))
    scored = text[1:]  # 'éaaéa': every token but the first
    nats = -sum(math.log(0.75 if c == "a" else 0.25) for c in scored)
    assert result.tokens == 5
    assert result.bytes == len(scored.encode()) == 7
    assert math.isclose(result.loss, nats / 5, rel_tol=1e-6)
    assert math.isclose(result.perplexity, math.exp(nats / 5), rel_tol=1e-6)
    assert math.isclose(result.bits_per_byte, nats / math.log(2) / 7, rel_tol=1e-6)


def test_uniform_model_has_perplexity_equal_to_vocab_size():
    tok = CharTokenizer(list("abcd"))
    ids = np.random.default_rng(0).integers(0, 4, 500).astype(np.uint16)
    result = evaluate_ids(FixedDistribution([0.25] * 4), tok, ids, 16, 4, torch.device("cpu"))
    assert math.isclose(result.perplexity, 4.0, rel_tol=1e-5)
    assert math.isclose(result.bits_per_byte, 2.0, rel_tol=1e-5)
