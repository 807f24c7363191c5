"""One module per `lmforge` command: its flags, its `--help` examples and its handler together.

Each module declares `HELP` (the line in `lmforge --help`), `EXAMPLES` and `run(args, extra) ->
exit status`, and where it has them `DESCRIPTION`, `SHARED` (the flag groups of `common.py` it
takes), `add_arguments(parser)` and `ACCEPTS_OVERRIDES` (`--section.key VALUE` arrive in `extra`).
Heavy imports (torch) stay inside `run`, so `lmforge --help` starts at once.
"""

COMMANDS = ("train", "sample", "eval", "probe", "study", "regress", "report", "prepare", "tokenizer", "compare",
            "serve", "finetune", "merge", "export", "classify", "tasks", "sweep", "size", "presets")
