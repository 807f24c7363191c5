"""Worker processes for encoding: how many cores, and a pool that starts without re-importing anything.

On Linux the pool forks, so workers inherit the tokenizer instead of
rebuilding it. Each worker encodes on one thread; setting
TOKENIZERS_PARALLELISM before the fork also keeps Hugging Face `tokenizers`
from warning that it had to turn its own threads off in the children.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from typing import Any


def cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def can_fork_workers() -> bool:
    """Fork is available, and this is not itself a pool worker (those may not have children)."""
    return "fork" in mp.get_all_start_methods() and not mp.current_process().daemon


def process_pool(workers: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()):
    """A `multiprocessing.Pool` of `workers` processes (forked where possible, else spawned)."""
    ctx = mp.get_context("fork" if can_fork_workers() else "spawn")
    previous = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        return ctx.Pool(workers, initializer=initializer, initargs=initargs)
    finally:
        if previous is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = previous
