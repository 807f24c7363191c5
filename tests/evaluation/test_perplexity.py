import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lmforge.errors import LmforgeError
from lmforge.evaluation import evaluate_ids
from lmforge.evaluation.perplexity import scored_bytes, sliding_windows, token_nats
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


def test_a_text_of_one_token_has_nothing_to_score():
    tok = CharTokenizer(["a"])
    with pytest.raises(LmforgeError, match="the evaluation text has 1 tokens"):
        evaluate_ids(FixedDistribution([1.0]), tok, tok.encode_array("a"), 4, 1, torch.device("cpu"))


def test_evaluation_leaves_the_model_in_the_mode_it_found_it_in():
    model, ids = FixedDistribution([0.5, 0.5]), np.array([0, 1, 0, 1])
    for training in (True, False):
        model.train(training)
        token_nats(model, ids, 2, 1, torch.device("cpu"))
        assert model.training is training


# ---------------------------------------------------------------------- sliding windows


class PositionalConfidence(LanguageModel):
    """Predicts the next id as (x + 1) % V with logit t + 1 at window position t: more context, more confidence.

    On ids 0, 1, 2, … every prediction is right, so the nats of a target depend
    only on its position t in the window that scored it: -log(e^(t+1) / (e^(t+1) + V - 1)).
    """

    family = "positional"

    def __init__(self, vocab_size):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, ids):
        t = torch.arange(ids.size(1), dtype=torch.float32)[None, :, None]  # (1, T, 1)
        return (t + 1) * torch.nn.functional.one_hot((ids + 1) % self.vocab_size, self.vocab_size).float()


def positional_nats(t: int, vocab: int) -> float:
    return -math.log(math.exp(t + 1) / (math.exp(t + 1) + vocab - 1))


@pytest.mark.parametrize("stride, positions", [
    # 7 ids, windows of 4: which window position scores each of the targets 1..6
    (4, [0, 1, 2, 3, 0, 1]),  # windows at 0 and 4: targets 5, 6 start a fresh window
    (2, [0, 1, 2, 3, 2, 3]),  # windows at 0 and 2: targets 5, 6 keep 3 and 4 tokens of context
    (1, [0, 1, 2, 3, 3, 3]),  # windows at 0, 1, 2: every later target has the full context
])
def test_sliding_window_loss_equals_a_hand_computation(stride, positions):
    vocab = 8
    ids = np.arange(7, dtype=np.uint16)
    model = PositionalConfidence(vocab)
    expected = [positional_nats(t, vocab) for t in positions]
    nats = token_nats(model, ids, block_size=4, batch_size=2, device=torch.device("cpu"), stride=stride)
    assert np.allclose(nats, expected, rtol=1e-5)
    result = evaluate_ids(model, CharTokenizer([chr(65 + i) for i in range(vocab)]), ids, 4, 2, torch.device("cpu"),
                          stride=stride)
    assert result.tokens == 6 and result.stride == stride
    assert math.isclose(result.loss, sum(expected) / 6, rel_tol=1e-6)


def test_loss_falls_as_the_stride_shrinks():
    ids = (np.arange(300) % 8).astype(np.uint16)
    model = PositionalConfidence(8)
    losses = [evaluate_ids(model, CharTokenizer(list("abcdefgh")), ids, 16, 8, torch.device("cpu"), stride=s).loss
              for s in (16, 8, 4, 2, 1)]
    assert all(a > b for a, b in zip(losses, losses[1:])), losses


def test_stride_equal_to_the_context_is_the_non_overlapping_eval():
    """The default (stride = context) is what training's val_loss measures: non-overlapping windows."""
    ids = np.random.default_rng(1).integers(0, 8, 103).astype(np.uint16)
    model = PositionalConfidence(8)
    windows = [torch.from_numpy(ids[i : i + 11].astype(np.int64))[None] for i in range(0, 102, 10)]  # 10 of 11, 1 of 3
    expected = torch.cat([torch.nn.functional.cross_entropy(model(w[:, :-1]).transpose(1, 2), w[:, 1:],
                                                            reduction="none").flatten() for w in windows])
    assert np.allclose(token_nats(model, ids, 10, 4, torch.device("cpu")), expected.numpy(), rtol=1e-6)


@given(n=st.integers(2, 60), block=st.integers(1, 12), data=st.data())
def test_windows_score_every_token_but_the_first_exactly_once(n, block, data):
    stride = data.draw(st.integers(1, block))
    windows = sliding_windows(n, block, stride)
    scored = [w.begin + w.length - k + 1 for w in windows for k in range(w.n_scored, 0, -1)]
    assert scored == list(range(1, n))
    for w in windows:
        assert 1 <= w.n_scored <= w.length <= block
    # every scored target (but those of the first window) has at least block - stride + 1 tokens of context
    for w in windows[1:]:
        if w.length == block:
            assert w.length - w.n_scored + 1 >= block - stride + 1


def test_a_continuation_is_scored_with_the_full_context_whatever_the_prompt_length():
    """`continuation_logprobs` keeps `block_size` prompt tokens and slides one token at a time by default, so every
    continuation token is predicted from a full window, position 3 of 4 (the last token of the prompt included)."""
    from lmforge.evaluation.scoring import continuation_logprobs

    model, prompt, continuation = PositionalConfidence(16), list(range(10)), [10, 11, 12, 13, 14]
    scores = continuation_logprobs(model, prompt, continuation, 4, torch.device("cpu"))
    assert np.allclose(scores, [-positional_nats(3, 16)] * 5, rtol=1e-6)
    # with stride 4 the windows restart: continuation tokens sit at positions 3, 0, 1, 2, 3 of theirs
    strided = continuation_logprobs(model, prompt, continuation, 4, torch.device("cpu"), stride=4)
    assert np.allclose(strided, [-positional_nats(t, 16) for t in (3, 0, 1, 2, 3)], rtol=1e-6)


def test_bad_stride_names_the_flag():
    with pytest.raises(LmforgeError, match="--stride must be between 1 and the context size 4"):
        sliding_windows(10, 4, 5)
    with pytest.raises(LmforgeError, match="--stride"):
        sliding_windows(10, 4, 0)


# ---------------------------------------------------------------------- bits per byte for any tokenizer


class MultiCharTokenizer:
    """A fake subword tokenizer: greedy longest match over pieces of several characters, decode = concatenation."""

    kind = "test-multichar"
    eos_id = None  # no special tokens

    def __init__(self, pieces):
        self.pieces = pieces

    @property
    def vocab_size(self):
        return len(self.pieces)

    def encode(self, text):
        ids, i = [], 0
        while i < len(text):
            best = max((p for p in self.pieces if text.startswith(p, i)), key=len)
            ids.append(self.pieces.index(best))
            i += len(best)
        return ids

    def decode(self, ids):
        return "".join(self.pieces[i] for i in ids)


class WordTokenizer(MultiCharTokenizer):
    """A fake word tokenizer: decode joins words with spaces, so decode(ids) is not the concatenation of tokens."""

    def encode(self, text):
        return [self.pieces.index(w) for w in text.split()]

    def decode(self, ids):
        return " ".join(self.pieces[i] for i in ids)


def direct_bits_per_byte(probs, ids, scored_text):
    bits = -sum(math.log2(probs[i]) for i in ids[1:])
    return bits / len(scored_text.encode("utf-8"))


def test_bits_per_byte_with_multi_character_tokens():
    pieces = ["the ", "th", "e", "é", "café ", "a", "b", " ", "t", "h", "c", "f"]
    tok = MultiCharTokenizer(pieces)
    text = "the café thé bat the cafe"
    ids = tok.encode(text)
    assert tok.decode(ids) == text and len(ids) < len(text)  # tokens span several characters and bytes
    probs = np.linspace(1, 2, len(pieces))
    probs /= probs.sum()
    result = evaluate_ids(FixedDistribution(probs.tolist()), tok, np.array(ids), 4, 3, torch.device("cpu"))
    scored_text = text[len(pieces[ids[0]]):]  # everything after the first token
    assert result.bytes == len(scored_text.encode())
    assert math.isclose(result.bits_per_byte, direct_bits_per_byte(probs, ids, scored_text), rel_tol=1e-5)


def test_bits_per_byte_with_a_word_tokenizer_counts_the_joining_spaces():
    tok = WordTokenizer(["the", "cat", "sat", "mat", "on"])
    text = "the cat sat on the mat"
    ids = tok.encode(text)
    probs = [0.4, 0.1, 0.2, 0.1, 0.2]
    result = evaluate_ids(FixedDistribution(probs), tok, np.array(ids), 3, 2, torch.device("cpu"))
    assert result.bytes == len(" cat sat on the mat") == scored_bytes(tok, np.array(ids))
    assert math.isclose(result.bits_per_byte, direct_bits_per_byte(probs, ids, " cat sat on the mat"), rel_tol=1e-5)


def test_scored_bytes_leave_out_the_first_tokens_bytes_not_its_characters():
    tok = CharTokenizer(["a", "é"])
    assert scored_bytes(tok, tok.encode_array("éaé")) == 3  # 5 bytes, less the 2 of the first 'é'


def test_documents_are_scored_each_followed_by_eos_with_the_bytes_and_unknown_words_of_every_document():
    """`evaluate_text` of documents: laid out as prepared data (doc, EOS, doc, EOS); bytes are the UTF-8 bytes of
    every document but the first token, and unknown words of every document are charged 8 bits a byte."""
    from lmforge.evaluation.perplexity import evaluate_text
    from lmforge.tokenizers.word import WordTokenizer as Words

    tok = Words(["the", " cat", " sat", "."])  # then <|unk|> = 4, <|eos|> = 5; no " " token: " cät" is one unknown
    probs = [0.3, 0.1, 0.1, 0.2, 0.2, 0.1]
    result = evaluate_text(FixedDistribution(probs), tok, ["the cat sat.", "the cät dog."], 4, 2, torch.device("cpu"))
    # ids: the cat sat . EOS | the unk unk . EOS; the first 'the' is not scored
    targets = [1, 2, 3, 5, 0, 4, 4, 3, 5]
    nats = -sum(math.log(probs[i]) for i in targets)
    text_nats = -sum(math.log(probs[i]) for i in targets if i != 5)  # no byte stands for an EOS
    assert result.tokens == 9 and math.isclose(result.loss, nats / 9, rel_tol=1e-6)
    assert result.bytes == len(" cat sat.") + len("the cät dog.".encode()) == 22  # 'ä' is two bytes
    assert result.unknown_bytes == len(" cät".encode()) + len(" dog") == 9
    assert math.isclose(result.bits_per_byte, (text_nats / math.log(2) + 8 * 9) / 22, rel_tol=1e-6)


@pytest.mark.parametrize("n_ids, batch_size, streams", [(16, 64, 1), (17, 64, 2), (25, 64, 3), (100, 4, 4), (9, 64, 1)])
def test_a_recurrent_model_reads_at_most_batch_size_streams_each_of_at_least_one_window(n_ids, batch_size, streams):
    from lmforge.evaluation.perplexity import recurrent_streams

    assert recurrent_streams(n_ids, 8, batch_size) == streams  # n_ids - 1 targets in windows of 8


def test_cli_eval_stride_on_a_trained_run(capsys, tiny_run, small_text_file):
    import json

    from lmforge.cli import main

    results = {}
    for stride in (32, 8):  # the tiny preset's context is 32
        assert main(["eval", str(tiny_run), "--data", str(small_text_file), "--stride", str(stride), "--json"]) == 0
        results[stride] = json.loads(capsys.readouterr().out)
    assert results[32]["tokens"] == results[8]["tokens"] == len(small_text_file.read_text()) - 1
    assert results[8]["loss"] < results[32]["loss"]  # more context per token
    assert main(["eval", str(tiny_run), "--data", str(small_text_file), "--stride", "33"]) == 2
    assert "--stride must be between 1 and the context size 32" in capsys.readouterr().err
    assert main(["eval", str(tiny_run), "--data", str(small_text_file), "--batch-size", "0"]) == 2
    assert "--batch-size must be at least 1, not 0" in capsys.readouterr().err


def test_eval_of_a_word_run_counts_the_bytes_of_unknown_words_not_of_the_unknown_token(tmp_path, small_text_file,
                                                                                      capsys):
    """bits per byte is per byte of the text: an unknown word costs its own bytes, not those of `<|unk|>`."""
    import lmforge
    from lmforge.cli import main
    from lmforge.evaluation.perplexity import evaluate_run

    run = tmp_path / "word"
    assert main(["train", "--preset", "tiny", "--data", str(small_text_file), "--out", str(run), "--data.tokenizer",
                 "word", "--train.max_steps", "2", "--train.eval_interval", "2", "--sample.max_new_tokens", "0"]) == 0
    text = "First Zyzzyvas hear Quokkas of Xanadu, rather"  # known words and words the tokenizer never saw
    (tmp_path / "eval.txt").write_text(text, encoding="utf-8")
    result = evaluate_run(lmforge.load(run), tmp_path / "eval.txt")
    assert result["unknown_chars"] > 0
    capsys.readouterr()
    assert main(["eval", str(run), "--data", str(tmp_path / "eval.txt")]) == 0
    assert f"warning: {result['unknown_chars']} word(s) of" in capsys.readouterr().err  # words, not characters
    assert result["bytes"] == len(text.encode("utf-8")) - len("First")  # every byte but the first token's


def test_eval_prints_windows_or_streams_and_the_three_numbers():
    from lmforge.evaluation.perplexity import format_eval

    result = {"data": "val.txt", "tokens": 12345, "bytes": 23456, "block_size": 64, "stride": 16, "streams": None,
              "loss": 1.23456, "perplexity": 3.43678, "bits_per_byte": 0.98765}
    assert format_eval(result) == ("val.txt: 12,345 tokens, 23,456 bytes, windows of 64 every 16 tokens\n"
                                   "loss        1.2346 nats/token\nperplexity  3.437\nbits/byte   0.9877")
    recurrent = format_eval({**result, "stride": None, "streams": 4})
    assert recurrent.splitlines()[0].endswith("23,456 bytes, 4 stream(s) in windows of 64, the state carried")


def test_a_word_runs_bits_per_byte_charges_8_bits_for_each_byte_of_an_unknown_word(tmp_path, small_text_file):
    """An `<|unk|>` prediction says a word comes, not which one: its bytes are spelled at 8 bits each, not free."""
    import lmforge
    from lmforge.cli import main
    from lmforge.evaluation.perplexity import evaluate_run

    run_dir = tmp_path / "word"
    assert main(["train", "--preset", "tiny", "--data", str(small_text_file), "--out", str(run_dir), "--data.tokenizer",
                 "word", "--train.max_steps", "2", "--train.eval_interval", "2", "--sample.max_new_tokens", "0"]) == 0
    unknown_words = ["Zyzzyvas", "Quokkas", "Xanadu"]
    text = "First Zyzzyvas hear Quokkas speak Xanadu, rather"
    (tmp_path / "eval.txt").write_text(text, encoding="utf-8")
    run = lmforge.load(run_dir)
    result = evaluate_run(run, tmp_path / "eval.txt")
    tok = run.tokenizer
    assert tok.unknown_count(text) == 3 and int(tok.encode_array(text)[0]) != tok.unk_id
    spelled = sum(len(w) for w in unknown_words) + (0 if tok.space_id is not None else len(unknown_words))
    nats = token_nats(run.model, tok.encode_array(text), run.config.model.block_size, 64)
    n_bytes = len(text.encode()) - len("First")
    assert math.isclose(result["bits_per_byte"], (nats.sum() / math.log(2) + 8 * spelled) / n_bytes, rel_tol=1e-9)
    assert result["bytes"] == n_bytes and result["unknown_bytes"] == spelled


# ---------------------------------------------------------------------- EOS: a document's end, no byte of text


def test_a_prepared_document_and_the_same_text_as_a_file_give_the_same_bits_per_byte(tmp_path):
    """Bits per byte scores the text's bytes: the EOS target that ends a prepared document has none, so its loss
    is left out of bits per byte (loss per token keeps it). Training's val_bpb on a prepared directory whose val
    split is one document equals the bits per byte of that document's text, as `eval` and `compare` score it."""
    from lmforge.config import Config
    from lmforge.config_files import load_preset
    from lmforge.data.inputs import in_val
    from lmforge.data.prepare import PrepareOptions, prepare
    from lmforge.evaluation.perplexity import evaluate_run
    from lmforge.run import Run
    from lmforge.tokenizers import train_tokenizer
    from lmforge.training import Trainer

    docs = [f"Document {i}: " + "the quick brown fox jumps over the lazy dog. " * (i % 4 + 3) for i in range(8)]
    seed = next(s for s in range(1000) if sum(in_val(s, i, 0.2) for i in range(len(docs))) == 1)
    [val_doc] = [d for i, d in enumerate(docs) if in_val(seed, i, 0.2)]
    folder = tmp_path / "docs"
    folder.mkdir()
    for i, doc in enumerate(docs):
        (folder / f"{i}.txt").write_text(doc, encoding="utf-8")
    tok = train_tokenizer("char", docs, documents=True)
    prepare(folder, tok, tmp_path / "prepared", PrepareOptions(seed=seed, val_fraction=0.2, workers=1, progress=False))

    cfg = Config.from_dict(load_preset("tiny")).updated({"data.path": str(tmp_path / "prepared"), "train.progress": False})
    trainer = Trainer(cfg, tmp_path / "run")
    assert len(trainer.val_ids) == len(val_doc) + 1 and int(trainer.val_ids[-1]) == tok.eos_id  # the document, then EOS
    prepared = trainer.evaluate()
    (tmp_path / "doc.txt").write_text(val_doc, encoding="utf-8")
    run = Run(tmp_path / "run", cfg, trainer.tokenizer, trainer.model, trainer.device)
    as_text = evaluate_run(run, tmp_path / "doc.txt", batch_size=cfg.train.eval_batch_size)  # what `eval` runs
    assert math.isclose(prepared["val_bpb"], as_text["bits_per_byte"], rel_tol=1e-6)
    assert not math.isclose(prepared["val_loss"], as_text["loss"], rel_tol=1e-4)  # loss per token still scores the EOS
