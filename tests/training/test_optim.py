from lmforge.config import ModelConfig
from lmforge.models import build_model
from lmforge.training.optim import decay_groups


def test_only_hidden_matrices_are_decayed():
    model = build_model(ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=10, bias=True))
    decay, no_decay = decay_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert decayed == {f"blocks.{i}.{m}.weight" for i in range(2) for m in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert "tok_emb.weight" in {names[id(p)] for p in no_decay["params"]}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
