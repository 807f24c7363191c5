"""From token ids to the text a user sees: incremental decoding and stop strings.

A continuation is decoded whole at each step, not token by token, because a token
may end in the middle of a character (byte-level BPE); its bytes are kept, so that
costs one UTF-8 read, not a lookup per token (`Tokenizer.decode` is those bytes read
as UTF-8). Text is shown only once it
can no longer change: a trailing replacement character may still become a real
character, and a suffix that starts a stop string may still complete it. When a
stop string appears, the text ends just before it.
"""

from __future__ import annotations

from collections.abc import Sequence

from lmforge.tokenizers import Tokenizer

REPLACEMENT = "\ufffd"  # what a partial UTF-8 sequence decodes to


def find_stop(text: str, stops: Sequence[str]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def undecided_tail(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters may still change or turn into a stop string."""
    tail = len(text) - len(text.rstrip(REPLACEMENT))
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), tail, -1):
            if text.endswith(stop[:n]):
                tail = n
                break
    return tail


class Continuation:
    """The growing text of one sample: feed it tokens, show what `add` returns."""

    def __init__(self, tokenizer: Tokenizer, stops: Sequence[str] = ()):
        self.tokenizer = tokenizer
        self.stops = tuple(stops)
        self.ids: list[int] = []
        self.data = bytearray()  # the tokens' bytes: `tokenizer.decode(ids)` reads them as UTF-8
        self.text = ""  # everything decoded so far, cut at a stop string once one appears
        self.shown = 0  # characters of `text` handed out already
        self.finish_reason: str | None = None  # "stop", "eos" or "length" once finished

    def add(self, token_id: int) -> str:
        """Append a token; return the text that became final (may be empty)."""
        if self.finish_reason is not None:
            return ""
        self.ids.append(token_id)
        self.data += self.tokenizer.token_bytes(token_id)
        self.text = self.data.decode("utf-8", "replace")
        cut = find_stop(self.text, self.stops) if self.stops else None
        if cut is not None:
            self.text = self.text[:cut]
            self.finish_reason = "stop"
            return self._show(len(self.text))
        return self._show(len(self.text) - undecided_tail(self.text, self.stops))

    def finish(self, reason: str) -> str:
        """End the sample (EOS or the length limit); return the text held back until now."""
        if self.finish_reason is None:
            self.finish_reason = reason
        return self._show(len(self.text))

    def _show(self, upto: int) -> str:
        piece = self.text[self.shown : upto] if upto > self.shown else ""
        self.shown = max(self.shown, upto)
        return piece
