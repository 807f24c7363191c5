"""One module per `lmforge` command: its flags, its `--help` examples and its handler together.

Each module declares `HELP` (the line in `lmforge --help`), `DESCRIPTION`, `EXAMPLES`,
`SHARED` (the names of the flag groups in `common.py` it takes), `add_arguments(parser)`
and `run(args, extra) -> exit status`. Heavy imports (torch) stay inside `run`, so
`lmforge --help` starts at once.
"""

COMMANDS = ("train", "sample", "eval", "probe", "study", "regress", "report", "prepare", "tokenizer", "compare",
            "serve", "finetune", "merge", "export", "classify", "tasks", "sweep", "size", "presets")
