import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lmforge.errors import LmforgeError
from lmforge.tokenizers import CharTokenizer, load_tokenizer
from text_strategies import LONE_SURROGATES, texts


def test_vocabulary_is_the_sorted_character_set():
    tok = CharTokenizer.train("hello world")
    assert tok.chars == [" ", "d", "e", "h", "l", "o", "r", "w"]
    assert tok.vocab_size == 8 and tok.specials == {}
    assert tok.encode("hello") == [3, 2, 4, 4, 5]


@given(st.text(min_size=1))
def test_round_trip_for_any_text_it_was_trained_on(text):
    tok = CharTokenizer.train(text)
    assert tok.encode(text) == [sorted(set(text)).index(c) for c in text]  # each character's rank
    assert tok.decode(tok.encode(text)) == text


@given(st.text(alphabet="abc xyz\n", min_size=1), st.text())
def test_unseen_characters_become_the_fallback(train_text, other):
    tok = CharTokenizer.train(train_text + " ")
    expected = "".join(c if c in train_text else " " for c in other)
    assert tok.encode(other) == [tok.chars.index(c) for c in expected]
    assert tok.decode(tok.encode(other)) == expected
    assert tok.unknown_count(other) == sum(c not in train_text + " " for c in other)


def test_without_a_space_the_fallback_is_the_first_character_and_a_chosen_one_is_saved(tmp_path):
    tok = CharTokenizer.train("cab")  # chars "abc": "a" stands in for what is unseen
    assert tok.encode("azc") == [0, 0, 2]
    CharTokenizer(list(" ab"), fallback="b").save(tmp_path / "tokenizer.json")
    assert load_tokenizer(tmp_path / "tokenizer.json").encode("az") == [1, 2]


@given(texts)
def test_byte_policy_round_trips_any_string(text):
    tok = CharTokenizer.train("abc def\n", unknown="bytes", specials={"eos": "<|endoftext|>"})
    ids = tok.encode(text)
    chars = "\n abcdef"  # sorted; then the 256 bytes from id 8
    assert ids == [i for c in text for i in ([chars.index(c)] if c in chars else [8 + b for b in c.encode()])]
    assert tok.decode(ids) == text
    assert all(0 <= i < tok.vocab_size and i != tok.eos_id for i in ids)
    assert tok.unknown_count(text) == 0


def test_byte_policy_keeps_character_ids_and_spells_unseen_characters_in_utf8():
    tok = CharTokenizer.train("ab", unknown="bytes", specials={"eos": "<|endoftext|>"})
    assert tok.chars == ["a", "b"] and tok.vocab_size == 2 + 256 + 1 and tok.eos_id == 258
    assert tok.encode("aé") == [0, 2 + 0xC3, 2 + 0xA9]
    assert tok.decode([0, tok.eos_id, 1]) == "a<|endoftext|>b"


def test_specials_come_after_the_characters():
    plain, with_eos = CharTokenizer.train("hello"), CharTokenizer.train("hello", specials={"eos": "<|endoftext|>"})
    assert with_eos.encode("hello") == plain.encode("hello")
    assert with_eos.eos_id == plain.vocab_size and with_eos.vocab_size == plain.vocab_size + 1
    assert with_eos.eos_id not in with_eos.encode("<|endoftext|>")  # its spelling is text, never the special id
    assert with_eos.decode([with_eos.eos_id]) == "<|endoftext|>"


@pytest.mark.parametrize("unknown", ["replace", "error", "bytes"])
@pytest.mark.parametrize("text", LONE_SURROGATES)
def test_lone_surrogates_are_rejected(unknown, text):
    tok = CharTokenizer.train("abcdx", unknown=unknown)
    with pytest.raises(LmforgeError, match="lone surrogate U\\+D[89A-F][0-9A-F]{2}"):
        tok.encode(text)
    with pytest.raises(LmforgeError, match="lone surrogate"):
        tok.encode_array(text)
    with pytest.raises(LmforgeError, match="lone surrogate"):
        CharTokenizer.train(text)


def test_error_policy_names_the_unseen_characters():
    tok = CharTokenizer(list("ab"), unknown="error")
    with pytest.raises(LmforgeError, match="'z'"):
        tok.encode("abz")
    with pytest.raises(LmforgeError, match="'z'"):
        tok.encode_array("abz")


def test_uint16_ids_and_save_load(tmp_path):
    tok = CharTokenizer.train("the quick brown fox", unknown="bytes", specials={"eos": "<|endoftext|>"})
    assert tok.encode_array("fox").dtype == np.uint16
    tok.save(tmp_path / "tokenizer.json")
    again = load_tokenizer(tmp_path / "tokenizer.json")
    assert again.chars == tok.chars and again.encode("quick ☃") == tok.encode("quick ☃")
    assert again.specials == tok.specials and again.vocab_size == tok.vocab_size


def test_a_file_from_before_specials_still_loads(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{"type": "char", "version": 1, "unknown": "replace", "fallback": " ", "chars": [" ", "a"]}')
    tok = load_tokenizer(path)
    assert tok.vocab_size == 2 and tok.specials == {} and tok.encode("a a") == [1, 0, 1]


def test_corrupt_tokenizer_file_is_explained(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text("{not json")
    with pytest.raises(LmforgeError, match="corrupt"):
        load_tokenizer(path)
    path.write_text('{"type": "char", "version": 1}')
    with pytest.raises(LmforgeError, match="corrupt"):
        load_tokenizer(path)
