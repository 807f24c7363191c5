from itertools import accumulate

from hypothesis import given
from hypothesis import strategies as st

from lmforge.data.sources import safe_cut, split_text
from lmforge.tokenizers.bpe import PATTERN
from lmforge.tokenizers.word import pieces
from text_strategies import texts


words = st.lists(st.one_of(texts, st.sampled_from([" ", "\n", "\n\n", "  ", "word", "\t"])), max_size=30).map("".join)


@given(words, st.integers(1, 50))
def test_parts_join_back_and_safe_cuts_split_no_piece(text, size):
    parts = split_text(text, size)
    assert "".join(parts) == text and all(parts)
    cuts = list(accumulate(len(p) for p in parts))[:-1]
    if all(not text[c - 1].isspace() and text[c] in " \n" for c in cuts):  # no cut was forced
        assert [p for part in parts for p in PATTERN.findall(part)] == PATTERN.findall(text)
        assert [p for part in parts for p in pieces(part)] == pieces(text)


@given(words, st.data())
def test_the_cut_is_the_largest_safe_point_up_to_the_limit_the_limit_included(text, data):
    """Brute force: a safe point i has a non-space before it and a space or newline at it."""
    safe = [i for i in range(1, len(text)) if not text[i - 1].isspace() and text[i] in " \n"]
    anywhere = st.integers(1, len(text) + 1)
    limit = data.draw(st.one_of(st.sampled_from(safe), anywhere) if safe else anywhere)  # often at a safe point
    expected = len(text) if limit >= len(text) else max([i for i in safe if i <= limit], default=limit)
    assert safe_cut(text, 0, limit) == expected


def test_cut_falls_before_a_space_or_newline_after_a_non_space():
    text = "one two\n\nthree  four"
    assert safe_cut(text, 0, 12) == 7  # "one two" | "\n\nthree..." (not between the newlines, not before "three")
    assert safe_cut(text, 0, 3) == 3  # the very limit, since "one" | " two" is safe
    assert safe_cut("ab cd ef gh", 0, 5) == 5  # "ab cd" | " ef gh": the limit itself, though "ab" | ... is safe too
    assert safe_cut("abcdef", 0, 3) == 3  # no safe point: cut at the limit anyway
    assert safe_cut("a " + "x" * 400, 0, 350) == 1  # a safe point far back (past 256 characters) still wins
    assert safe_cut(text, 0, 100) == len(text)
