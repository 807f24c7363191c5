import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmforge.errors import LmforgeError
from lmforge.tokenizers import BpeTokenizer, load_tokenizer
from lmforge.tokenizers import bpe as bpe_module
from text_strategies import LONE_SURROGATES, TRICKY, texts

TRAIN_TEXT = ("The quick brown fox jumps over the lazy dog. It's the fox's day; they've said so.\n" * 20
              + "Fellow-Citizens of the Senate and House of Representatives:\n" * 20 + "".join(TRICKY) * 3)


@pytest.fixture(scope="module")
def bpe() -> BpeTokenizer:
    return BpeTokenizer.train(TRAIN_TEXT, vocab_size=400)


@pytest.fixture(scope="module")
def hf_reference(bpe, tmp_path_factory):
    """Hugging Face `tokenizers` on its own, built from the tokenizer JSON that lmforge saves: none of lmforge's
    splitting, caches or tables stands between a text and its ids."""
    from tokenizers import Tokenizer

    path = tmp_path_factory.mktemp("bpe") / "bpe.json"
    bpe.save(path)
    hf = Tokenizer.from_str(json.dumps(json.loads(path.read_text())["hf_tokenizer"]))
    hf.encode_special_tokens = True  # a special token's spelling inside a text is text
    return lambda text: hf.encode(text, add_special_tokens=False).ids


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
    assert bpe.encode_array(text).tolist() == ids


# words, and every kind of whitespace next to the spaces that the word cache cuts at
SPACED = st.lists(st.one_of(st.sampled_from([" ", "  ", "\n", " \n", "\n ", "\t", "\xa0", "\u3000", "\x85", "\x1c",
                                             "\r\n", "'s", "fox", "the", "Fox,", "42", "日本", "👋🏽", "-"]),
                            st.text(max_size=4)), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(SPACED)
def test_word_cache_gives_the_ids_of_hugging_face(bpe, hf_reference, text):
    """Cutting at spaces and caching whole words must not change a single id, whatever whitespace is around:
    cold or warm, the word cache gives what Hugging Face gives for the same tokenizer JSON."""
    expected = hf_reference(text)
    assert bpe._ids_of(bpe_module.split_pieces(text)).tolist() == expected  # the piece path
    bpe._clear_word_cache()
    assert bpe.encode(text) == expected  # every word new to the word cache
    assert bpe.encode(text) == expected  # again, every word from the warm word cache


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(SPACED, st.sampled_from(["", " ", "  ", "fox ", " fox", "\n", "x\n "])), max_size=8))
def test_many_texts_in_one_pass_give_each_text_its_own_ids(bpe, texts):
    """No word or piece spans two texts, whatever they start or end with: empty texts, spaces, newlines."""
    bpe._clear_cache()
    for _ in range(2):  # cold caches, then warm ones
        assert [ids.tolist() for ids in bpe.encode_many(texts)] == [bpe.encode(text) for text in texts]


def test_encode_many_names_a_lone_surrogate(bpe):
    with pytest.raises(LmforgeError, match="lone surrogate U\\+DC80 at character 1"):
        bpe.encode_many(["fox", "a\udc80b", "dog"])


@pytest.mark.parametrize("slot_bits", [1, 19])
def test_word_table_is_exact_even_when_every_word_shares_a_slot(monkeypatch, slot_bits):
    """Words of every length around the table's 8- and 16-byte keys, some alike in their first and last 8 bytes."""
    from lmforge.tokenizers import word_table

    monkeypatch.setattr(word_table, "SLOT_BITS", slot_bits)
    bpe = BpeTokenizer.train(TRAIN_TEXT, vocab_size=400)  # its table has 2 slots when slot_bits is 1
    words = ["a" * n for n in range(1, 20)] + ["ab" * n for n in range(1, 10)] + ["fox" + "x" * n + "fox" for n in range(12)]
    words += ["The", "the", "fox.", "fox,", "say:\nIt", "Ünï", "naïve", "x\ty", "42"]
    words += [f"quickfox{middle}quickfox" for middle in ("a", "b", "ab", "ba", "aaa")]  # alike but in the middle
    for text in (" ".join(words * 3), "x " + " ".join(words[-5:] * 2)):
        bpe._clear_cache()
        expected = bpe._ids_of(bpe_module.split_pieces(text)).tolist()
        assert bpe.encode(text) == expected  # cold: every word through the dict, then into the table
        assert bpe.encode(text) == expected  # warm: what the table holds
        assert (bpe._table.length >= 0).sum() <= 2 ** slot_bits


def test_repeated_new_words_are_learned_once_and_exactly_even_when_every_key_clashes(bpe, monkeypatch):
    """A cold cache works out each distinct word once per part; words whose keys clash still get their own ids."""
    from lmforge.tokenizers import word_table

    of = word_table.Words.of
    clashing = lambda *args: (w := of(*args)).__class__(**{**vars(w), "key": np.zeros_like(w.key)})
    text = " ".join(["fox", "Fox", "fox", "dog.", "fox", "dog,", "dog.", "quickfox"] * 5)
    expected = bpe._ids_of(bpe_module.split_pieces(text)).tolist()
    learned = []
    learn = bpe._learn_words
    monkeypatch.setattr(bpe, "_learn_words", lambda words: learned.extend(words) or learn(words))
    for words_of in (of, clashing):
        monkeypatch.setattr(word_table.Words, "of", staticmethod(words_of))
        bpe._clear_cache()
        learned.clear()
        assert bpe.encode(text) == expected
        assert sorted(learned) == sorted({"Fox", "fox", "dog.", "dog,", "quickfox"})  # the first word goes by pieces


def test_ids_equal_hugging_face_on_the_whole_text(bpe):
    """The piece cache gives the ids that Hugging Face's own pipeline gives, on ordinary and tricky text."""
    text = TRAIN_TEXT + " Zebra-crossings  and\t\ttabs \n\n\n  trailing   " + "".join(TRICKY)
    assert bpe.encode(text) == bpe.hf.encode(text, add_special_tokens=False).ids


def test_long_texts_are_encoded_in_parallel_parts_with_the_same_ids(bpe, monkeypatch):
    text = TRAIN_TEXT * 3
    whole = bpe.encode(text)
    monkeypatch.setattr(bpe_module, "PARALLEL_CHUNK", 97)
    monkeypatch.setattr(bpe_module, "PROCESS_MIN", 1000)
    monkeypatch.setattr(bpe_module, "cores", lambda: 2)
    assert bpe.encode_array(text).tolist() == whole


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(texts, st.sampled_from([" ", "\n", "word", "it's", " 42", "é", "  \n"])), max_size=12))
def test_ascii_stretches_take_the_fast_pattern_and_give_the_same_pieces(chunks):
    text = "".join(chunks)
    assert bpe_module.split_pieces(text) == bpe_module.PATTERN.findall(text)
    ascii_text = "".join(c for c in text if c.isascii())
    assert bpe_module.ASCII_PATTERN.findall(ascii_text) == bpe_module.PATTERN.findall(ascii_text)


def test_a_lone_surrogate_deep_in_a_text_encoded_in_processes_is_named_where_it_stands(bpe, monkeypatch):
    monkeypatch.setattr(bpe_module, "PARALLEL_CHUNK", 97)
    monkeypatch.setattr(bpe_module, "PROCESS_MIN", 1000)
    monkeypatch.setattr(bpe_module, "cores", lambda: 2)
    text = TRAIN_TEXT * 2 + "\udc80" + TRAIN_TEXT
    with pytest.raises(LmforgeError, match=f"lone surrogate U\\+DC80 at character {2 * len(TRAIN_TEXT):,}"):
        bpe.encode_array(text)


def test_cache_is_bounded(monkeypatch):
    bpe = BpeTokenizer.train(TRAIN_TEXT, vocab_size=300)
    monkeypatch.setattr(bpe_module, "MAX_CACHE", 10)
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho"
    assert bpe.encode(text) == bpe.hf.encode(text, add_special_tokens=False).ids  # more new pieces than fit
    assert bpe.encode(" alpha beta") == bpe.hf.encode(" alpha beta", add_special_tokens=False).ids  # emptied first
    assert len(bpe._cache) <= 10 and len(bpe._words) <= 10  # both caches were emptied rather than grown past the bound


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
