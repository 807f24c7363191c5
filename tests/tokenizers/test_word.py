import pytest
from hypothesis import given
from hypothesis import strategies as st

from lmforge.errors import LmforgeError
from lmforge.tokenizers import WordTokenizer, load_tokenizer
from lmforge.tokenizers.word import pieces
from text_strategies import LONE_SURROGATES, texts

TEXT = "The cat sat.  The cat ran!\nA dog, a cat; the end.\n"


@given(texts)
def test_pieces_join_back_to_the_text(text):
    assert "".join(pieces(text)) == text


def test_words_carry_their_space_and_punctuation_is_split():
    assert pieces("Hello,  world!\n") == ["Hello", ",", " ", " world", "!", "\n"]
    assert pieces("What?! ...") == ["What", "?", "!", " .", ".", "."]  # each mark its own piece


def test_vocabulary_is_capped_by_frequency_then_specials():
    tok = WordTokenizer.train(TEXT, vocab_size=6)
    assert tok.words == [" cat", "\n", ".", " ", " The", "!"][:4]  # the 4 most frequent pieces, ties by the piece
    assert tok.vocab_size == 6 and tok.specials == {"unk": 4, "eos": 5}


def test_unknown_words_keep_their_space():
    tok = WordTokenizer.train(TEXT, vocab_size=6)
    ids = tok.encode(" cat zebra.")
    assert ids == [0, 3, tok.specials["unk"], 2]
    assert tok.decode(ids) == " cat <|unk|>."
    assert tok.unknown_count(" cat zebra.") == 1


@pytest.mark.parametrize("words", [[" cat", "\n", ".", " "], [" cat", "\n", "."]])  # with and without " "
@given(text=st.lists(st.sampled_from([" cat", " zebra", "cat", ".", "  ", "\n", "!", " ", "é"]), max_size=20).map("".join))
def test_every_unknown_piece_becomes_unk_after_its_space_if_the_vocabulary_has_one(words, text):
    tok = WordTokenizer(words)
    expected = []
    for piece in pieces(text):
        if piece in tok.stoi:
            expected.append(tok.stoi[piece])
        else:
            spaced = piece[0] == " " and len(piece) > 1 and tok.space_id is not None
            expected += [tok.space_id, tok.unk_id] if spaced else [tok.unk_id]
    assert tok.encode(text) == expected


def test_round_trip_for_text_inside_the_vocabulary():
    tok = WordTokenizer.train(TEXT)
    assert tok.decode(tok.encode(TEXT)) == TEXT
    assert tok.unknown_count(TEXT) == 0
    assert tok.encode("<|endoftext|>") != [tok.eos_id]  # the spelling of a special is text


def test_save_load_and_uint16(tmp_path):
    tok = WordTokenizer.train(TEXT, vocab_size=8)
    tok.save(tmp_path / "w.json")
    again = load_tokenizer(tmp_path / "w.json")
    assert isinstance(again, WordTokenizer) and again.encode(TEXT) == tok.encode(TEXT)
    assert again.encode_array(TEXT).dtype.name == "uint16"
    custom = WordTokenizer([" cat", " "], specials={"unk": "<?>"})  # its own specials: no eos
    custom.save(tmp_path / "custom.json")
    again = load_tokenizer(tmp_path / "custom.json")
    assert again.specials == {"unk": 2} and again.decode(again.encode(" dog cat")) == " <?> cat"


def test_too_small_a_vocabulary_names_the_flag():
    with pytest.raises(LmforgeError, match="--vocab-size 2 .* at least 3"):
        WordTokenizer.train(TEXT, vocab_size=2)


@pytest.mark.parametrize("text", LONE_SURROGATES)
def test_lone_surrogates_are_rejected(text):
    with pytest.raises(LmforgeError, match="lone surrogate"):
        WordTokenizer.train(TEXT).encode(text)


def test_unknown_tokens_stand_for_the_bytes_of_their_words():
    """What bits per byte charges for: the bytes each `<|unk|>` replaced (not its own 7), the kept space apart."""
    with_space = WordTokenizer(["The", " cat", " ", "."])
    assert with_space.unknown_bytes("The cat émeu.") == [len("émeu".encode())]  # " émeu": the space is its own token
    no_space = WordTokenizer(["The", " cat", "."])
    assert no_space.unknown_bytes("The cat émeu.") == [len(" émeu".encode())]  # the unknown token stands for the space too
    assert WordTokenizer(["a"]).unknown_bytes("a a") == [2]  # " a" is not a word of the vocabulary


def test_scored_bytes_are_counted_from_the_text_and_a_first_unknown_word_is_not_scored():
    tok = WordTokenizer(["The", " cat", " ", "."])
    text = "The cat émeu."
    counted = tok.count_scored_bytes(text, tok.encode_array(text))
    assert counted.bytes == len(" cat émeu.".encode()) and counted.unknown == len("émeu".encode())
    text = "Émeu cat zebra."  # the first token is unknown: its word is not scored, so neither counted nor charged
    counted = tok.count_scored_bytes(text, tok.encode_array(text))
    assert counted.bytes == len(" cat zebra.".encode()) and counted.unknown == len("zebra")
