import copy
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmforge.errors import LmforgeError
from lmforge.tokenizers import BpeTokenizer, load_tokenizer
from text_strategies import LONE_SURROGATES, TRICKY, texts

TRAIN_TEXT = ("The quick brown fox jumps over the lazy dog. It's the fox's day; they've said so.\n" * 20
              + "Fellow-Citizens of the Senate and House of Representatives:\n" * 20 + "".join(TRICKY) * 3)


@pytest.fixture(scope="module")
def bpe() -> BpeTokenizer:
    return BpeTokenizer.train(TRAIN_TEXT, vocab_size=400)


def test_training_learns_merges_up_to_the_vocabulary_size(bpe):
    assert 300 < bpe.vocab_size <= 400 and bpe.specials == {"eos": 0}
    ids = bpe.encode(" the fox")
    assert len(ids) < len(" the fox".encode())  # frequent words became single tokens
    assert bpe.decode([bpe.eos_id]) == "<|endoftext|>"
    assert bpe.eos_id not in bpe.encode("<|endoftext|>")  # its spelling is text


@settings(max_examples=150, deadline=None)
@given(texts)
def test_any_string_round_trips(bpe, text):
    ids = bpe.encode(text)
    assert bpe.decode(ids) == text


def hf_ids(tok: BpeTokenizer, text: str) -> list[int]:
    return tok.hf.encode(text, add_special_tokens=False).ids


# words, and every kind of whitespace next to them
SPACED = st.lists(st.one_of(st.sampled_from([" ", "  ", "\n", " \n", "\n ", "\t", "\xa0", "\u3000", "\x85", "\x1c",
                                             "\r\n", "'s", "fox", "the", "Fox,", "42", "日本", "👋🏽", "-"]),
                            st.text(max_size=4)), max_size=40).map("".join)


@pytest.fixture(scope="module")
def corpus_bpe() -> BpeTokenizer:
    """A vocabulary with thousands of merges, trained on the first 2 MB of the built-in corpus."""
    from lmforge.corpus import builtin_corpus

    return BpeTokenizer.train(builtin_corpus()[:2_000_000], vocab_size=4000)


@settings(max_examples=300, deadline=None)
@given(st.one_of(texts, SPACED))
def test_ids_equal_hugging_face_on_generated_text(bpe, corpus_bpe, text):
    for tok in (bpe, corpus_bpe):
        assert tok.encode(text) == hf_ids(tok, text)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from("aab ,.\n'sé日👋"), min_size=1, max_size=400), st.integers(258, 320), SPACED)
def test_ids_equal_hugging_face_for_any_trained_vocabulary(training_text, vocab_size, text):
    """Whatever text BPE is trained on, the merges it writes rank in tiktoken as in Hugging Face."""
    tok = BpeTokenizer.train(training_text, vocab_size=vocab_size, min_frequency=1)
    for probe in (text, training_text, training_text[::-1]):
        assert tok.encode(probe) == hf_ids(tok, probe)


def test_ids_equal_hugging_face_on_the_whole_text(bpe):
    text = TRAIN_TEXT + " Zebra-crossings  and\t\ttabs \n\n\n  trailing   " + "".join(TRICKY)
    assert bpe.encode(text) == hf_ids(bpe, text)


def test_ids_equal_hugging_face_reading_the_saved_json_itself(bpe, tmp_path):
    """Hugging Face loads the pipeline from the tokenizer file, not from lmforge's objects."""
    from tokenizers import Tokenizer as HFTokenizer

    bpe.save(tmp_path / "bpe.json")
    hf = HFTokenizer.from_str(json.dumps(json.loads((tmp_path / "bpe.json").read_text())["hf_tokenizer"]))
    hf.encode_special_tokens = True
    text = TRAIN_TEXT + "".join(TRICKY) + " <|endoftext|> tail"
    assert load_tokenizer(tmp_path / "bpe.json").encode(text) == hf.encode(text, add_special_tokens=False).ids


@pytest.mark.slow
def test_ids_equal_hugging_face_on_the_whole_builtin_corpus(corpus_bpe):
    from lmforge.corpus import builtin_corpus

    text = builtin_corpus()
    assert corpus_bpe.encode_array(text).tolist() == hf_ids(corpus_bpe, text)


def test_a_vocabulary_tiktoken_would_rank_differently_is_refused(bpe):
    """Merges listed against id order: tiktoken ranks a merge by its token's id, so it would not give Hugging
    Face's ids; loading such a file names the fix."""
    pipeline = copy.deepcopy(bpe.hf_pipeline)
    pipeline["model"]["merges"].reverse()
    with pytest.raises(LmforgeError, match="merges in id order.*retrain"):
        BpeTokenizer(pipeline)


def test_a_lone_surrogate_deep_in_a_long_text_is_named_where_it_stands(bpe):
    text = TRAIN_TEXT * 2 + "\udc80" + TRAIN_TEXT
    with pytest.raises(LmforgeError, match=f"lone surrogate U\\+DC80 at character {2 * len(TRAIN_TEXT):,}"):
        bpe.encode_array(text)


def test_save_load(bpe, tmp_path):
    bpe.save(tmp_path / "bpe.json")
    again = load_tokenizer(tmp_path / "bpe.json")
    assert isinstance(again, BpeTokenizer) and again.vocab_size == bpe.vocab_size
    assert again.encode(TRAIN_TEXT) == bpe.encode(TRAIN_TEXT) and again.specials == bpe.specials
    assert again.encode_array("fox").dtype == np.uint16


def test_token_bytes_may_be_part_of_a_character(bpe):
    char = "龍"  # 3 bytes in UTF-8, none of its own in the training text: no token can hold all of them
    assert char not in TRAIN_TEXT
    ids = bpe.encode(char)
    assert len(ids) >= 2 and all(len(bpe.token_bytes(i)) < 3 for i in ids)
    assert b"".join(bpe.token_bytes(i) for i in ids) == char.encode()
    assert bpe.decode(ids[:1]) == "\ufffd" and bpe.decode(ids) == char  # a cut character shows as U+FFFD


def test_too_small_a_vocabulary_names_the_flag():
    with pytest.raises(LmforgeError, match="--vocab-size 100 .* at least 258"):
        BpeTokenizer.train("abc", vocab_size=100)


@pytest.mark.parametrize("text", LONE_SURROGATES)
def test_lone_surrogates_are_rejected(bpe, text):
    with pytest.raises(LmforgeError, match="lone surrogate"):
        bpe.encode(text)
    with pytest.raises(LmforgeError, match="lone surrogate"):
        bpe.encode_array(text)


def test_a_vocabulary_missing_a_byte_is_refused(bpe):
    """Byte 0's token (spelled Ā) renamed to a token no merge makes: the count of tokens still adds up, but byte 0
    could not be encoded."""
    pipeline = copy.deepcopy(bpe.hf_pipeline)
    vocab = pipeline["model"]["vocab"]
    vocab["ĀĀ"] = vocab.pop("Ā")
    with pytest.raises(LmforgeError, match="merges in id order.*retrain"):
        BpeTokenizer(pipeline)


def test_a_pair_seen_once_is_not_merged():
    tok = BpeTokenizer.train("xy" + " ab" * 5, vocab_size=300)
    assert [len(tok.encode(word)) for word in (" ab", "xy")] == [1, 2]


def test_its_own_specials_survive_save_load(tmp_path):
    tok = BpeTokenizer.train(TRAIN_TEXT, vocab_size=300, specials={"eos": "<|end|>", "pad": "<|pad|>"})
    tok.save(tmp_path / "bpe.json")
    again = load_tokenizer(tmp_path / "bpe.json")
    assert tok.specials == again.specials == {"eos": 0, "pad": 1} and again.decode([1, 0]) == "<|pad|><|end|>"
