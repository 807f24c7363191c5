"""Instruction fine-tuning: only answers are targets, the run is an ordinary run, LoRA trains adapters only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lmforge.adapt.finetune import answer_loss, pad_examples, with_eos
from lmforge.adapt.instructions import ChatTemplate, encode_example, read_instructions
from lmforge.cli import main
from lmforge.config import ModelConfig
from lmforge.errors import LmforgeError
from lmforge.models import build_model, next_token_loss
from lmforge.run import load

PAIRS = [{"prompt": f"Q: {a} plus {b}?\nA: ", "completion": str(a + b)} for a in range(6) for b in range(6)]


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory, small_text_file):
    out = tmp_path_factory.mktemp("runs") / "bpe"
    assert main(["train", "--preset", "tiny", "--data", str(small_text_file), "--out", str(out), "--tokenizer", "bpe",
                 "--vocab-size", "300", "--train.max_steps", "10", "--train.eval_interval", "5"]) == 0
    return out


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    return path


def test_prompt_targets_change_neither_loss_nor_gradients(bpe_run):
    run = load(bpe_run, device="cpu")
    tok, model = run.tokenizer, run.model.train()
    ids, trained = encode_example(tok, [("Q: 2 plus 3?\nA: ", False), ("5", True)], ChatTemplate())
    first_answer = int(np.argmax(trained))
    assert trained[first_answer:].all() and ids[-1] == tok.eos_id and not trained[:first_answer].any()

    def loss_and_grads(target_ids):
        inputs, _ = pad_examples([(ids, trained)], 64)
        _, targets = pad_examples([(target_ids, trained)], 64)
        model.zero_grad()
        loss = next_token_loss(model(inputs), targets)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters()]

    base_loss, base_grads = loss_and_grads(ids)
    for k in range(1, first_answer):  # every prompt token, the last one before the answer included
        other = ids.copy()
        other[k] = (other[k] + 1) % tok.vocab_size
        loss, grads = loss_and_grads(other)
        assert loss == base_loss and all(torch.equal(a, b) for a, b in zip(grads, base_grads))
    other = ids.copy()
    other[first_answer] = (other[first_answer] + 1) % tok.vocab_size
    assert loss_and_grads(other)[0] != base_loss  # the first answer token is a target


def test_a_long_example_gives_each_answer_token_the_context_decoding_gives_it():
    ids = np.arange(20)
    trained = np.arange(20) >= 12  # a prompt of 12 tokens, an answer of 8, with a context of 8
    x, y = pad_examples([(ids, trained)], 8)
    for t in range(1, 20):  # decoding predicts token t from the last 8 tokens before it
        if not trained[t]:
            continue
        rows = [r for r in range(len(y)) if (y[r] == t).any()]
        assert len(rows) == 1, f"token {t} is a target {len(rows)} times"
        col = int((y[rows[0]] == t).nonzero())
        assert x[rows[0], : col + 1].tolist() == list(range(max(0, t - 8), t))
    assert (y != -100).sum() == 8


def test_answer_loss_sums_each_answer_tokens_nats_as_decoding_scores_it():
    """Brute force: each trained token t predicted from the (at most 8) tokens before it, one forward pass each;
    the third number leaves out the EOS targets (bits per byte count the answer's text only). Two examples, one longer
    than the context, batched together so padding is in play. (Counting the EOS nats as text passed the older tests.)"""
    torch.manual_seed(0)
    model, eos = build_model(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8), 10).eval(), 9
    rows = [(np.array([1, 2, 3, 4, 9]), np.array([0, 0, 1, 1, 1], dtype=bool)),
            (np.array([5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 9, 7, 9]), np.arange(13) >= 9)]
    nats, text, count = 0.0, 0.0, 0
    with torch.no_grad():
        for ids, trained in rows:
            for t in np.flatnonzero(trained):
                context = torch.tensor(ids[max(0, t - 8) : t])[None]
                n = -torch.log_softmax(model(context)[0, -1], -1)[ids[t]].item()
                nats, text, count = nats + n, text + (n if ids[t] != eos else 0.0), count + 1
    got = answer_loss(model, rows, 8, 2, torch.device("cpu"), eos)
    assert got[1] == count == 7
    assert got[0] == pytest.approx(nats, rel=1e-5) and got[2] == pytest.approx(text, rel=1e-5)


def test_a_new_eos_row_is_the_mean_of_the_old_rows(tiny_run):
    """The embedding row (and an untied head's row) a char run gains for EOS start at the mean of the others, so the
    new token starts as an average one. (A zero row passed the older tests.)"""
    run = load(tiny_run, device="cpu")
    state = run.model.state_dict()
    tok, grown = with_eos(run.tokenizer, state)
    old = state["tok_emb.weight"]
    assert torch.equal(grown["tok_emb.weight"][:-1], old) and tok.eos_id == len(old)
    assert torch.allclose(grown["tok_emb.weight"][-1], old.sum(0) / len(old), atol=1e-6)


def test_messages_render_with_the_template_and_train_assistant_turns_only(bpe_run, tmp_path):
    path = tmp_path / "chat.jsonl"
    chat = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"},
                         {"role": "assistant", "content": "Bye"}]}
    path.write_text(json.dumps(chat) + "\n" + json.dumps(PAIRS[0]) + "\n")
    examples = read_instructions(path)
    tok = load(bpe_run, device="cpu").tokenizer
    ids, trained = encode_example(tok, examples[0], ChatTemplate())
    assert tok.decode(ids[trained].tolist()) == "Hello<|endoftext|>Bye<|endoftext|>"
    assert tok.decode(ids.tolist()).startswith("System: Be brief.\nUser: Hi\nAssistant: Hello")
    path.write_text('{"messages": [{"role": "user", "content": "no answer"}]}\n')
    with pytest.raises(LmforgeError, match="line 1 is neither"):
        read_instructions(path)
    path.write_bytes(b'{"prompt": "caf\xe9", "completion": "ok"}\n')  # Latin-1
    with pytest.raises(LmforgeError, match="chat.jsonl' is not UTF-8"):
        read_instructions(path)


def val_loss_and_bpb(run_dir, data):
    """A fine-tuned run's val loss (nats per answer token, EOS included) and bits per byte of the answers' text (the
    nats of the EOS targets left out: they predict no byte), from the answer_loss checked above. (Bits per byte from
    every answer token's nats passed the older tests.)"""
    from lmforge.adapt.finetune import split_examples

    run = load(run_dir, device="cpu")
    _, val = split_examples(read_instructions(data), None, run.config.train.seed)
    rows = [encode_example(run.tokenizer, e, ChatTemplate.load(run_dir)) for e in val]
    nats, count, text = answer_loss(run.model, rows, run.config.model.block_size, 8, torch.device("cpu"),
                                    run.tokenizer.eos_id)
    return nats / count, text / np.log(2) / sum(len(e[1][0].encode()) for e in val)


def test_finetune_learns_answers_and_is_an_ordinary_run(bpe_run, pairs_file, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(["finetune", str(bpe_run), "--data", str(pairs_file), "--out", str(out), "--train.max_steps", "60",
                 "--train.eval_interval", "20", "--train.lr", "3e-3"]) == 0
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in evals if r["event"] == "eval"]
    assert evals[-1]["val_loss"] < 0.7 * evals[0]["val_loss"]
    assert all(r["val_ppl"] == pytest.approx(np.exp(r["val_loss"]), rel=1e-12) for r in evals)
    best = [r for r in evals if r["best"]][-1]  # model.safetensors holds this eval's weights
    assert (best["val_loss"], best["val_bpb"]) == pytest.approx(val_loss_and_bpb(out, pairs_file), rel=1e-5)
    assert (out / "chat_template.json").is_file() and json.loads((out / "finetune.json").read_text())["val_examples"] == 3
    # a run trained on pairs renders a one-question chat (the server's /v1/chat/completions) as its prompts were
    question = PAIRS[0]["prompt"]
    assert ChatTemplate.load(out).prompt([{"role": "user", "content": question}]) == question
    capsys.readouterr()
    assert main(["sample", str(out), "--prompt", "Q: 1 plus 2?\nA: ", "--max-new-tokens", "5", "--temperature", "0"]) == 0
    assert main(["finetune", "--resume", str(out), "--train.max_steps", "70"]) == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 70


def test_lora_finetune_trains_adapters_only_and_merges(bpe_run, pairs_file, tmp_path):
    out = tmp_path / "lora"
    assert main(["finetune", str(bpe_run), "--data", str(pairs_file), "--out", str(out), "--lora-rank", "4",
                 "--lora-alpha", "8", "--lora-targets", "qkv,fc", "--train.max_steps", "20", "--train.eval_interval",
                 "10", "--train.lr", "1e-2", "--merge"]) == 0
    base = load_file(str(bpe_run / "model.safetensors"))
    tuned = load_file(str(out / "model.safetensors"))
    adapters = load_file(str(out / "adapter.safetensors"))
    assert adapters and {k.split(".")[-2] for k in adapters} == {"qkv", "fc"}
    m = load(out, device="cpu").config.model  # the flags reach the config (dropping --lora-alpha from it passed)
    assert (m.lora_rank, m.lora_alpha, list(m.lora_targets)) == (4, 8.0, ["qkv", "fc"])
    assert any(t.abs().sum() > 0 for k, t in adapters.items() if "lora_b" in k)  # the adapters learned
    for name, t in base.items():  # every base weight is untouched, under its wrapped name where adapted
        wrapped = name.replace(".weight", ".base.weight").replace(".bias", ".base.bias")
        assert torch.equal(tuned.get(name, tuned.get(wrapped)), t)
    lora, merged = load(out, device="cpu"), load(tmp_path / "lora-merged", device="cpu")
    assert merged.config.model.lora_rank == 0 and set(merged.model.state_dict()) == set(load(bpe_run).model.state_dict())
    ids = torch.randint(0, lora.tokenizer.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (lora.model(ids) - merged.model(ids)).abs().max() < 1e-5
    with pytest.raises(LmforgeError, match="lmforge merge"):
        from lmforge.interop.huggingface import export_hf
        export_hf(out, tmp_path / "hf")


def test_finetune_refuses_bad_input(bpe_run, tiny_run, pairs_file, tmp_path, capsys):
    for argv, words in (([str(bpe_run), "--data", str(tmp_path / "nope.jsonl")], "does not exist"),
                        ([str(bpe_run), "--data", str(pairs_file), "--val-data", str(tmp_path / "nope.jsonl")],
                         "--val-data '"),
                        ([str(bpe_run), "--data", str(pairs_file), "--model.n_layer", "3"], "cannot be set"),
                        ([str(bpe_run)], "needs BASE, --data"),
                        ([str(bpe_run), "--data", str(pairs_file), "--merge", "--train.max_steps", "1"],
                         "--merge folds LoRA adapters into the model; add --lora-rank R")):
        assert main(["finetune", *argv, "--out", str(tmp_path / "o")]) == 2
        assert words in capsys.readouterr().err


def test_a_char_run_without_eos_gains_one(tiny_run, pairs_file, tmp_path):
    base = load(tiny_run, device="cpu")
    assert base.tokenizer.eos_id is None
    out = tmp_path / "char"
    assert main(["finetune", str(tiny_run), "--data", str(pairs_file), "--out", str(out), "--train.max_steps", "4",
                 "--train.eval_interval", "2"]) == 0
    tuned = load(out, device="cpu")
    assert tuned.tokenizer.eos_id == base.tokenizer.vocab_size == tuned.tokenizer.vocab_size - 1
    assert tuned.tokenizer.encode("Speak") == base.tokenizer.encode("Speak")  # the old ids stay
