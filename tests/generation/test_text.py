from lmforge.generation.text import Continuation, find_stop, undecided_tail
from lmforge.tokenizers.char import CharTokenizer

TOK = CharTokenizer(list("abc\n XY"))


def feed(stops, text):
    row = Continuation(TOK, stops)
    shown = [row.add(i) for i in TOK.encode(text)]
    return row, shown


def test_a_stop_string_ends_the_text_just_before_it():
    row, shown = feed(["XY"], "abcXYab")
    assert row.text == "abc" and row.finish_reason == "stop"
    assert "".join(shown) == "abc"
    assert row.ids == TOK.encode("abcXY")  # later tokens are ignored


def test_a_possible_start_of_a_stop_string_is_held_back_until_decided():
    row, shown = feed(["XY"], "abX")
    assert shown == ["a", "b", ""]
    assert row.add(TOK.encode("a")[0]) == "Xa"  # it was not a stop string after all
    assert row.finish("length") == "" and row.text == "abXa"


def test_the_earliest_of_several_stop_strings_wins():
    row, _ = feed(["c\n", "b"], "abc\n")
    assert row.text == "a"
    assert find_stop("xxbyyc\n", ["c\n", "b"]) == 2 and find_stop("abc", ["z"]) is None


def test_finish_releases_what_was_held():
    row, shown = feed(["\n\n"], "ab\n")
    assert "".join(shown) == "ab"
    assert row.finish("length") == "\n" and row.finish_reason == "length"


def test_a_trailing_partial_character_is_held_back():
    assert undecided_tail("ab\ufffd", []) == 1
    assert undecided_tail("abX", ["XYZ"]) == 1 and undecided_tail("abXY", ["XYZ"]) == 2
    assert undecided_tail("abc", ["XYZ"]) == 0


def test_text_is_the_tokenizers_decoding_also_when_a_character_spans_byte_tokens():
    tok = CharTokenizer(list("ab "), unknown="bytes")
    ids = tok.encode("a é€b")  # é and € are byte tokens: two and three of them
    row = Continuation(tok)
    shown = [row.add(i) for i in ids]
    for n in range(1, len(ids) + 1):  # the text after every token is what the tokenizer decodes
        part = Continuation(tok)
        for i in ids[:n]:
            part.add(i)
        assert part.text == tok.decode(ids[:n])
    assert "".join(shown) == "a é€b" and "\ufffd" not in "".join(shown)


def test_the_longest_possible_start_of_any_stop_string_is_held_back():
    """"XY" may still become "XYZ", even though another stop string's start, "Y", is shorter."""
    assert undecided_tail("abXY", ["XYZ", "YQ"]) == 2 and undecided_tail("abXY", ["YQ", "XYZ"]) == 2
    row, shown = feed(["XYZ", "YQ"], "abXY")
    assert "".join(shown) == "ab"


def test_the_first_finish_reason_stays():
    row, _ = feed(["XY"], "aXYb")
    assert row.finish("length") == "" and row.finish_reason == "stop"  # a caller that ends it anyway
    row, _ = feed([], "ab")
    row.finish("eos")
    assert row.finish("length") == "" and row.finish_reason == "eos"
