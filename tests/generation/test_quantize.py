"""Int8 decoding on a CPU: a faithful copy of the model, usable by every decoding path."""

import json

import pytest
import torch

from lmforge.cli import main
from lmforge.config import DecodeConfig, ModelConfig
from lmforge.errors import LmforgeError
from lmforge.generation.decode import decode
from lmforge.generation.quantize import quantize_model
from lmforge.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def model(family: str = "transformer", **changes):
    torch.manual_seed(0)
    cfg = ModelConfig(family=family, n_layer=2, n_head=4, n_embd=128, block_size=32, **changes)
    return build_model(cfg, 97).eval()


def test_int8_copy_stays_close_to_float_and_leaves_the_original_alone():
    float_model = model()
    before = {k: v.clone() for k, v in float_model.state_dict().items()}
    q = quantize_model(float_model, "int8")
    assert q is not float_model
    assert not any(type(m) is torch.nn.Linear for m in q.modules())  # every Linear became an int8 one
    assert all(torch.equal(before[k], v) for k, v in float_model.state_dict().items())
    assert type(float_model.head) is torch.nn.Linear
    ids = torch.randint(97, (4, 32), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref, got = float_model(ids), q(ids)
    assert not torch.equal(ref, got)  # really quantized...
    gap = (got - ref).abs()
    assert gap.mean() < 0.05 * ref.std() and gap.max() < 0.25 * ref.std()  # ...and close, next to the logits' spread
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() > 0.9


@pytest.mark.parametrize("family", ["transformer", "rnn"])
def test_int8_decoding_with_the_cache_matches_a_full_recompute(family):
    q = quantize_model(model(family), "int8")
    prompt = torch.randint(97, (1, 5), generator=torch.Generator().manual_seed(2))
    got = torch.stack([s.ids for s in decode(q, prompt, DecodeConfig(max_new_tokens=12, greedy=True))], dim=1)
    ids = prompt
    with torch.inference_mode():
        for _ in range(12):
            ids = torch.cat([ids, q(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(got, ids[:, 5:])


def test_none_is_the_model_itself_and_unknown_schemes_are_refused():
    m = model()
    assert quantize_model(m, "none") is m
    with pytest.raises(LmforgeError, match="--quantize must be one of none, int8"):
        quantize_model(m, "int4")


def test_cli_samples_and_evaluates_with_int8_weights(capsys, tiny_run, small_text_file):
    args = ["sample", str(tiny_run), "--prompt", "All", "--max-new-tokens", "10", "--greedy", "--quantize", "int8"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("All") and len(out.rstrip("\n")) > len("All")
    assert main(["eval", str(tiny_run), "--data", str(small_text_file), "--json"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert main(["eval", str(tiny_run), "--data", str(small_text_file), "--json", "--quantize", "int8"]) == 0
    int8 = json.loads(capsys.readouterr().out)
    assert int8["loss"] != full["loss"] and int8["loss"] == pytest.approx(full["loss"], rel=0.05)
