"""The `lmforge` command: one parser built from `lmforge/commands/`, a module per command; an `LmforgeError`
(or a flag argparse refused) becomes one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from lmforge import __version__
from lmforge.commands import COMMANDS
from lmforge.commands.common import SHARED, Parser, UsageError
from lmforge.errors import LmforgeError


def command_module(name: str):
    return importlib.import_module(f"lmforge.commands.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lmforge", epilog="Run `lmforge COMMAND --help` for a command's options and examples.",
                    description="Train language models from scratch on your own text, then sample, evaluate and "
                                "compare them.")
    parser.add_argument("--version", action="version", version=f"lmforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = command_module(name)
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           epilog=module.EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           parents=[SHARED[flags] for flags in getattr(module, "SHARED", ())])
        if hasattr(module, "add_arguments"):
            module.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    command = None
    try:
        args, extra = parser.parse_known_args(argv)
        command = args.command
        if command is None:
            parser.print_help()
            return 2
        module = command_module(command)
        if extra and not getattr(module, "ACCEPTS_OVERRIDES", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return module.run(args, extra)
    except UsageError as exc:
        print(f"{exc.prog}: error: {exc}", file=sys.stderr)
        return 2
    except LmforgeError as exc:
        print(f"lmforge {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lmforge {command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lmforge ... | head`: the reader left, which is no error of the user's
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # else flushing at exit raises again
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by it
    except Exception as exc:  # an absurd size (e.g. --train.batch_size 100000000) runs out of memory: fixable
        if not out_of_memory(exc):
            raise
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        print(f"lmforge {command}: error: out of memory ({reason}); ask for less: a smaller batch, model or number "
              "of samples (`lmforge size` estimates what training needs)", file=sys.stderr)
        return 2


def out_of_memory(exc: BaseException) -> bool:
    """numpy's MemoryError, torch's CPU allocator failing (a RuntimeError), or torch's CUDA OutOfMemoryError."""
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or \
        "can't allocate memory" in str(exc)
