import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lmforge.errors import LmforgeError
from lmforge.tokenizers import CharTokenizer, load_tokenizer


def test_vocabulary_is_the_sorted_character_set():
    tok = CharTokenizer.train("hello world")
    assert tok.chars == [" ", "d", "e", "h", "l", "o", "r", "w"]
    assert tok.encode("hello") == [3, 2, 4, 4, 5]


@given(st.text(min_size=1))
def test_round_trip_for_any_text_it_was_trained_on(text):
    tok = CharTokenizer.train(text)
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode_array(text).tolist() == tok.encode(text)


@given(st.text(alphabet="abc xyz\n", min_size=1), st.text())
def test_unseen_characters_become_the_fallback(train_text, other):
    tok = CharTokenizer.train(train_text + " ")
    expected = "".join(c if c in tok.stoi else " " for c in other)
    assert tok.decode(tok.encode(other)) == expected
    assert tok.unknown_count(other) == sum(c not in tok.stoi for c in other)
    assert tok.encode_array(other).tolist() == tok.encode(other)


def test_error_policy_names_the_unseen_characters():
    tok = CharTokenizer(list("ab"), unknown="error")
    with pytest.raises(LmforgeError, match="'z'"):
        tok.encode("abz")
    with pytest.raises(LmforgeError, match="'z'"):
        tok.encode_array("abz")


def test_uint16_ids_and_save_load(tmp_path):
    tok = CharTokenizer.train("the quick brown fox")
    assert tok.encode_array("fox").dtype == np.uint16
    tok.save(tmp_path / "tokenizer.json")
    again = load_tokenizer(tmp_path / "tokenizer.json")
    assert again.chars == tok.chars and again.encode("quick") == tok.encode("quick")


def test_corrupt_tokenizer_file_is_explained(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text("{not json")
    with pytest.raises(LmforgeError, match="corrupt"):
        load_tokenizer(path)
