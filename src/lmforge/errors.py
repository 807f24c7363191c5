"""The one exception type users see, for every problem they can fix (a missing file, a typo in a config key, an
absurd value); the command line prints it as one line. Anything else is a bug in lmforge and keeps its traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LmforgeError(Exception):
    """A problem with the user's input, stated with the way to fix it."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A " (did you mean 'X'?)" suffix naming the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""
