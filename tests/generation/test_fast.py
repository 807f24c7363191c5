"""The static-shape decode path: the same tokens as eager, and never loaded on the CPU unless asked for."""

import sys

import pytest
import torch

from lmforge.config import DecodeConfig, ModelConfig
from lmforge.errors import LmforgeError
from lmforge.generation import decode
from lmforge.generation.decode import resolve_mode
from lmforge.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = [[3, 1, 4, 1, 5], [2, 7], [6, 6, 1, 8, 2, 2, 9]]


def model(block_size=64):
    torch.manual_seed(0)
    m = build_model(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=block_size), 23).eval()
    with torch.no_grad():
        m.tok_emb.weight.mul_(20)
    return m


def tokens(m, prompts, mode, n=30, **options):
    cfg = DecodeConfig(max_new_tokens=n, greedy=True, mode=mode, **options)
    return torch.stack([s.ids for s in decode(m, prompts, cfg)], 1).tolist()


def test_static_shapes_give_the_eager_tokens_and_reuse_one_cache():
    m = model()
    assert tokens(m, PROMPTS, "static") == tokens(m, PROMPTS, "eager")
    caches = dict(m.__dict__["_static_caches"])
    assert tokens(m, PROMPTS[:1] * 3, "static") == tokens(m, PROMPTS[:1] * 3, "eager")  # a fresh prompt, same batch
    assert m.__dict__["_static_caches"] == caches, "the same batch size must reuse the same cache"


def test_static_decoding_past_the_context_falls_back_to_recomputing():
    m = model(block_size=16)
    assert tokens(m, PROMPTS, "static", n=40) == tokens(m, PROMPTS, "eager", n=40)


def test_auto_is_eager_on_the_cpu_and_never_imports_the_fast_module(monkeypatch):
    m = model()
    assert resolve_mode("auto", m, torch.device("cpu")) == "eager"
    assert resolve_mode("auto", m, torch.device("cuda")) == "compiled"
    monkeypatch.setitem(sys.modules, "lmforge.generation.fast", None)  # any import of it now fails
    assert len(tokens(m, PROMPTS, "auto")) == 3
    with pytest.raises(ImportError):
        tokens(m, PROMPTS, "static")


def test_static_mode_is_for_transformers():
    from torch import nn

    from lmforge.models import LanguageModel

    class Table(LanguageModel):
        family = "table-test"

        def __init__(self):
            super().__init__()
            self.table = nn.Embedding(5, 5)

        def forward(self, ids):
            return self.table(ids)

    with pytest.raises(LmforgeError, match="--decode eager"):
        tokens(Table(), [[1, 2]], "static")
    assert resolve_mode("auto", Table(), torch.device("cuda")) == "eager"


@pytest.mark.slow
def test_compiled_decoding_gives_the_eager_tokens(capsys):
    """torch.compile of the static step, on the CPU here (about a minute of compiling); on CUDA the same
    code also captures a CUDA graph. fullgraph=True makes any graph break an error, not a slowdown."""
    m = model()
    assert tokens(m, PROMPTS, "compiled") == tokens(m, PROMPTS, "eager")
    assert tokens(m, [[1, 2, 3]] * 3, "compiled") == tokens(m, [[1, 2, 3]] * 3, "eager")
    assert "compiled decoding failed" not in capsys.readouterr().err, "the compiled step fell back to eager"
