"""`python -m lmforge` is the `lmforge` command (and what torchrun launches)."""

from lmforge.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
