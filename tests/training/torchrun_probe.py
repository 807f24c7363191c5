"""`lmforge ARGS` under torchrun, then a line naming the gloo threads this process still runs.

The threads of a process group must end when training does, not while the
interpreter shuts down (issue 13 defect 10): test_distributed.py launches this in
place of `-m lmforge` and expects none to be left.
"""

import os
import sys
from pathlib import Path

from lmforge.cli import main

code = main(sys.argv[1:])
tasks = Path("/proc/self/task")  # Linux: one folder per thread, its name in comm
names = [(task / "comm").read_text().strip() for task in tasks.iterdir()] if tasks.is_dir() else []
print(f"rank {os.environ.get('RANK')} gloo threads after training: {sorted(n for n in names if 'gloo' in n)}")
sys.exit(code)
