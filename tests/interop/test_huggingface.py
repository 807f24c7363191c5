"""Export to and import from Hugging Face `transformers`: the same logits, the same ids, the same greedy tokens."""

from __future__ import annotations

import json

import pytest
import torch

from lmforge.cli import main
from lmforge.config import Config
from lmforge.errors import LmforgeError
from lmforge.interop.huggingface import export_hf, read_hf
from lmforge.models import build_model
from lmforge.run import load
from lmforge.tokenizers.bpe import BpeTokenizer
from lmforge.tokenizers.char import CharTokenizer
from lmforge.tokenizers.word import WordTokenizer
from lmforge.training.run_dir import save_weights

transformers = pytest.importorskip("transformers")

TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune, 1813. " * 20
GPT2_OPTIONS = {"positions": "learned", "norm": "layernorm", "mlp": "gelu"}
LLAMA_OPTIONS = {"positions": "rope", "norm": "rmsnorm", "mlp": "swiglu"}


def make_run(path, tokenizer, **model):
    """A run directory holding a randomly initialized model, with norms and biases random too (a swapped
    or untransposed tensor then changes the logits)."""
    cfg = Config().updated({"model": {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 48, **model}})
    torch.manual_seed(0)
    net = build_model(cfg.model, tokenizer.vocab_size)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.5 + (1.0 if name.endswith("weight") else 0.0))
    path.mkdir(parents=True)
    cfg.save(path / "config.yaml")
    tokenizer.save(path / "tokenizer.json")
    save_weights(net, path / "model.safetensors")
    return path


@pytest.fixture(scope="module")
def bpe():
    return BpeTokenizer.train(TEXT, vocab_size=300)


def hf_logits(folder, ids):
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor(ids)).logits, model


@pytest.mark.parametrize("options", [
    GPT2_OPTIONS, {**GPT2_OPTIONS, "bias": True}, {**GPT2_OPTIONS, "tie_weights": False},
    LLAMA_OPTIONS, {**LLAMA_OPTIONS, "bias": True, "rope_base": 500.0}, {**LLAMA_OPTIONS, "tie_weights": False},
], ids=["gpt2", "gpt2-bias", "gpt2-untied", "llama", "llama-bias-base", "llama-untied"])
def test_exported_model_gives_lmforges_logits_and_greedy_tokens(tmp_path, bpe, options):
    run = load(make_run(tmp_path / "run", bpe, **options), device="cpu")
    out = export_hf(run.path, tmp_path / "hf")
    ids = torch.randint(0, bpe.vocab_size, (3, 40), generator=torch.Generator().manual_seed(1))
    theirs, model = hf_logits(out, ids.tolist())
    with torch.no_grad():
        ours = run.model(ids)
    assert (ours - theirs).abs().max().item() < 1e-4
    assert ours.std().item() > 0.1  # the comparison is not between two near-constant outputs
    prompt = bpe.encode("It is a truth")
    greedy = model.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False, eos_token_id=None,
                            pad_token_id=0)[0, len(prompt):].tolist()
    assert "It is a truth" + bpe.decode(greedy) == run.generate("It is a truth", 12, greedy=True)


@pytest.mark.parametrize("options", [GPT2_OPTIONS, LLAMA_OPTIONS], ids=["gpt2", "llama"])
def test_exported_configs_say_what_the_model_and_run_do(tmp_path, bpe, options):
    """The norms' eps as the built model's own norm modules have it, the context as the block size, and the run's
    sampling settings in generation_config.json (temperature 0: greedy). (do_sample always true, or a Llama
    max_position_embeddings of 2048, passed the older tests.)"""
    path = make_run(tmp_path / "run", bpe, **options)
    run = load(path, device="cpu")
    run.config.updated({"sample.temperature": 0.0, "sample.top_k": 5}).save(path / "config.yaml")
    config = json.loads((export_hf(path, tmp_path / "hf") / "config.json").read_text())
    norm = run.model.blocks[0].norm1
    if options is GPT2_OPTIONS:
        assert (config["layer_norm_epsilon"], config["n_positions"]) == (norm.eps, 48)
    else:
        assert (config["rms_norm_eps"], config["max_position_embeddings"]) == (norm.eps, 48)
    generation = transformers.GenerationConfig.from_pretrained(tmp_path / "hf")
    assert (generation.do_sample, generation.top_k, generation.eos_token_id) == (False, 5, bpe.eos_id)


@pytest.mark.parametrize("make", [
    lambda: BpeTokenizer.train(TEXT, vocab_size=300),
    lambda: CharTokenizer.train(TEXT, specials={"eos": "<|endoftext|>"}),
    lambda: CharTokenizer.train(TEXT, unknown="bytes"),
], ids=["bpe", "char", "char-bytes"])
def test_exported_tokenizer_gives_the_same_ids_and_text(tmp_path, make):
    tok = make()
    out = export_hf(make_run(tmp_path / "run", tok, **GPT2_OPTIONS), tmp_path / "hf")
    theirs = transformers.AutoTokenizer.from_pretrained(out)
    for text in (TEXT[:300], "Unseen: Zebra ¿qué? 東京 \n\n tabs\t end", ""):
        assert theirs.encode(text, add_special_tokens=False) == tok.encode(text)
        if isinstance(tok, BpeTokenizer) or tok.unknown == "bytes":
            assert theirs.decode(tok.encode(text)) == text
    assert theirs.eos_token_id == tok.eos_id


def test_export_refuses_what_no_layout_expresses(tmp_path, bpe, family_runs):
    mixed = make_run(tmp_path / "mixed", bpe, positions="rope", norm="layernorm", mlp="relu2")
    for path, words in ((mixed, "--model.norm rmsnorm"), (family_runs["rnn"], "family transformer"),
                        (make_run(tmp_path / "qk", bpe, qk_norm=True, **GPT2_OPTIONS), "qk_norm false")):
        with pytest.raises(LmforgeError, match=words):
            export_hf(path, tmp_path / "out")
    word = make_run(tmp_path / "word", WordTokenizer.train(TEXT), **GPT2_OPTIONS)
    with pytest.raises(LmforgeError, match="bpe or char"):
        export_hf(word, tmp_path / "out-word")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_export_command(tmp_path, bpe, capsys):
    run = make_run(tmp_path / "run", bpe, **LLAMA_OPTIONS)
    assert main(["export", str(run), "--format", "hf", "--out", str(tmp_path / "hf")]) == 0
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["model_type"] == "llama" and config["vocab_size"] == bpe.vocab_size
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    weights = (run / "model.safetensors").read_bytes()
    (tmp_path / "notes.txt").write_text("keep")
    for out, words in ((run, "holds an lmforge run"), (tmp_path / "notes.txt", "is a file")):
        assert main(["export", str(run), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
    assert (run / "model.safetensors").read_bytes() == weights and load(run).tokenizer.vocab_size == bpe.vocab_size


# ------------------------------------------------------------------ import


def gpt2_folder(path, bpe, **extra):
    cfg = transformers.GPT2Config(vocab_size=bpe.vocab_size, n_positions=48, n_embd=32, n_layer=2, n_head=2,
                                  activation_function="gelu", eos_token_id=bpe.eos_id, bos_token_id=bpe.eos_id, **extra)
    return _save(transformers.GPT2LMHeadModel(cfg), path, bpe)


def llama_folder(path, bpe, **extra):
    cfg = transformers.LlamaConfig(**{
        "vocab_size": bpe.vocab_size, "hidden_size": 32, "intermediate_size": 88, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 48, "rms_norm_eps": 1e-6,
        "eos_token_id": bpe.eos_id, "bos_token_id": None, "pad_token_id": None, **extra})
    return _save(transformers.LlamaForCausalLM(cfg), path, bpe)


def llama_folder_without_tie_key(path, bpe):
    """A Llama config.json without tie_word_embeddings (older transformers left out values equal to the default),
    which transformers reads as LlamaConfig's default, untied."""
    folder, model = llama_folder(path, bpe)
    config = json.loads((folder / "config.json").read_text())
    del config["tie_word_embeddings"]
    (folder / "config.json").write_text(json.dumps(config))
    return folder, transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def _save(model, path, bpe):
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.5)
    model.save_pretrained(path)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe.hf, eos_token="<|endoftext|>")
    fast.save_pretrained(path)
    return path, model.eval()


@pytest.mark.parametrize("make", [
    gpt2_folder, llama_folder, lambda path, bpe: llama_folder(path, bpe, rope_theta=500.0), llama_folder_without_tie_key,
], ids=["gpt2", "llama", "llama-base-500", "llama-no-tie-key"])
def test_imported_model_gives_transformers_logits(tmp_path, bpe, make):
    """(A Llama imported with the default rope base whatever its config said passed before the llama-base-500 case;
    a context other than n_positions / max_position_embeddings before the block_size check.)"""
    folder, model = make(tmp_path / "hf", bpe)
    ck = read_hf(folder)
    assert ck.model.block_size == 48
    ours = build_model(ck.model, ck.tokenizer.vocab_size)
    ours.load_state_dict(ck.state)
    ours.eval()
    ids = torch.randint(0, bpe.vocab_size, (2, 40), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (ours(ids) - model(ids).logits).abs().max().item() < 1e-4
    assert ck.tokenizer.encode(TEXT[:200]) == bpe.encode(TEXT[:200]) and ck.tokenizer.eos_id == bpe.eos_id


def test_import_refuses_what_lmforge_cannot_run(tmp_path, bpe):
    folder, _ = gpt2_folder(tmp_path / "gelu-new", bpe)
    config = json.loads((folder / "config.json").read_text())
    for change, words in (({"activation_function": "gelu_new"}, "exact"), ({"model_type": "bert"}, "imports 'gpt2'"),
                          ({"vocab_size": bpe.vocab_size + 8}, "needs them equal")):
        (folder / "config.json").write_text(json.dumps(config | change))
        with pytest.raises(LmforgeError, match=words):
            read_hf(folder)
    gqa, _ = llama_folder(tmp_path / "gqa", bpe, num_key_value_heads=1)
    with pytest.raises(LmforgeError, match="grouped-query"):
        read_hf(gqa)
    with pytest.raises(LmforgeError, match="no config.json"):
        read_hf(tmp_path)
    folder, _ = llama_folder(tmp_path / "llama", bpe)
    config = json.loads((folder / "config.json").read_text())
    for change, words in (({"attention_bias": True, "mlp_bias": False}, "but not both"),
                          ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "scales its rotary"),
                          ({"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}}, "scales")):
        (folder / "config.json").write_text(json.dumps(config | change))
        with pytest.raises(LmforgeError, match=words):
            read_hf(folder)


def test_import_of_a_char_export_says_only_byte_level_bpe_imports(tmp_path):
    """A char run exports, but does not import back: the error says so, not to retrain an lmforge tokenizer."""
    char = make_run(tmp_path / "char", CharTokenizer.train(TEXT, specials={"eos": "<|endoftext|>"}), **LLAMA_OPTIONS)
    with pytest.raises(LmforgeError, match="imports byte-level BPE tokenizers only"):
        read_hf(export_hf(char, tmp_path / "hf"))


def test_train_init_from_a_hugging_face_folder_starts_from_its_weights(tmp_path, bpe, small_text_file, capsys):
    folder, model = llama_folder(tmp_path / "hf", bpe)
    out = tmp_path / "run"
    assert main(["train", "--init-from", str(folder), "--data", str(small_text_file), "--out", str(out),
                 "--train.optimizer", "adamw", "--train.lr", "1e-12", "--train.min_lr", "0", "--train.max_steps", "2",
                 "--train.eval_interval", "1"]) == 0
    run = load(out, device="cpu")
    assert run.config.model.positions == "rope" and run.tokenizer.encode(TEXT[:100]) == bpe.encode(TEXT[:100])
    ids = torch.randint(0, bpe.vocab_size, (2, 40), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (run.model(ids) - model(ids).logits).abs().max().item() < 1e-4  # lr 1e-12: still the imported weights
    assert main(["train", "--init-from", str(folder), "--out", str(tmp_path / "x"), "--model.n_layer", "3"]) == 2
    assert "brings its own model" in capsys.readouterr().err
