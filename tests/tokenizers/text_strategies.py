"""Hypothesis strategies for the text tokenizers must round-trip: every kind of character, surrogates aside."""

from hypothesis import strategies as st

TRICKY = list(
    "👋🏽👨‍👩‍👧🇫🇷🧪"  # emoji: skin tone modifier, ZWJ family, flag (regional indicators), astral plane
    "e\u0301a\u0308\u0327\u20dd"  # combining marks, alone and after a letter
    "日本語中文한국어"  # CJK and Hangul
    "\x00\x01\x1b\x1c\x7f\x85\r\n\t\x0b\x0c\u2028\u2029\u200b\ufeff\xa0\u3000 "  # control and space characters
    "'s've<|endoftext|>"  # contractions and a special token's spelling, which is ordinary text
)

# any character (Hypothesis leaves out surrogates, which are not characters) mixed with the tricky ones
texts = st.text(alphabet=st.one_of(st.characters(exclude_categories=("Cs",)), st.sampled_from(TRICKY)), max_size=200)
LONE_SURROGATES = ["\ud800", "ab\udfffcd", "x\udc80", "\ud83d"]  # the last: half of an emoji's surrogate pair
