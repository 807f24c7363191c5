"""What several commands share: flag groups, a parser whose errors take one line, small helpers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lmforge.errors import LmforgeError


class UsageError(Exception):
    """A command line argparse refused; `main` prints it as one line."""

    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line naming the help to read, not the usage and then the error."""

    def error(self, message: str):
        raise UsageError(self.prog, f"{message}; see `{self.prog} --help`")


def _flag(flag: str, **options) -> argparse.ArgumentParser:
    """A parent parser holding one flag, for the commands that take it (`parents=[...]` in cli.py)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(flag, **options)
    return parent


SHARED = {
    "device": _flag("--device", default="auto", help="auto | cpu | cuda | mps"),
    "json": _flag("--json", action="store_true", help="print one JSON object"),
    "quantize": _flag("--quantize", default="none", choices=["none", "int8"],
                      help="int8: int8 weights on a CPU, about 3x faster decoding at a small cost in loss"),
    "text_field": _flag("--text-field", metavar="FIELD", help="read the inputs as JSONL, text in FIELD (.jsonl files: "
                                                               "'text')"),
    "separator": _flag("--separator", metavar="TEXT", help=r"cut plain text files into documents at TEXT, e.g. '\n\n' "
                       r"(escapes allowed; default: one file, one document; one file alone: its last 10%% is val)"),
    "stride": _flag("--stride", type=int, default=None, metavar="S",
                    help="sliding-window stride for --data (see `lmforge eval --help`)"),
}


def unescape(text: str | None, flag: str = "--separator") -> str | None:
    """'\\n\\n' typed in a shell means two newlines; `flag` gave the text."""
    if text is None:
        return None
    try:
        return text.encode("utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError):
        raise LmforgeError(f"{flag} {text!r} has a broken escape; write e.g. '\\n\\n' or '---'") from None


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"saved {path}", file=sys.stderr)


def load_run(args: argparse.Namespace):
    """The run in `args.run_dir` on `--device`, with `--quantize` where the command takes it."""
    import lmforge

    return lmforge.load(args.run_dir, device=args.device, quantize=getattr(args, "quantize", "none"))
