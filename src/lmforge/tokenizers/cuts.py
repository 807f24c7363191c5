"""Where a long text can be cut so that encoding the parts gives the tokens of the whole.

Every tokenizer here first splits text into pieces with a regular expression.
For the byte-level BPE pattern a piece never spans a point where a non-space
character is followed by a space or a newline, and nothing before that point
looks past it; the word pattern and single characters respect such a point
too. So cutting there and encoding the parts separately (in parallel, or as a
file streams in) gives exactly the ids of encoding the whole.
"""

from __future__ import annotations

import re

_SAFE = re.compile(r"\S(?=[ \n])")
SEARCH_WINDOW = 1 << 16  # characters searched back from the limit; a text with no safe point there is cut anyway


def safe_cut(text: str, start: int, limit: int) -> int:
    """The largest safe cut point in (start, limit], or `limit` when the last SEARCH_WINDOW characters hold none."""
    if limit >= len(text):
        return len(text)
    for window in (256, SEARCH_WINDOW):  # ordinary text has a safe point every few characters
        last = None
        for last in _SAFE.finditer(text, max(start, limit - window), limit):
            pass
        if last is not None:
            return last.end()
    return limit


def split_text(text: str, size: int) -> list[str]:
    """`text` in consecutive parts of about `size` characters, each cut at a safe point."""
    parts, start = [], 0
    while start < len(text):
        end = safe_cut(text, start, start + max(1, size))
        parts.append(text[start:end])
        start = end
    return parts
