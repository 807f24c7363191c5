"""`metrics.jsonl`: one JSON object per event, appended and flushed as it happens."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

_IMPORT_TIME = time.time()


def process_start_time() -> float:
    """Wall-clock time this process started (from /proc on Linux), so `elapsed_s` counts
    interpreter start-up, imports and data loading too, not just the training loop."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        start_ticks = int(fields[19])  # field 22 of stat: start time in clock ticks after boot
        return time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _IMPORT_TIME


PROCESS_START = process_start_time()


def elapsed_s() -> float:
    return time.time() - PROCESS_START


class MetricsLog:
    def __init__(self, path: Path):
        self.path = path
        self.file = open(path, "a", encoding="utf-8")

    def write(self, event: str, **values: Any) -> dict[str, Any]:
        record = {"event": event, **values}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        return record

    def close(self) -> None:
        self.file.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every record. A last line without its newline that is not JSON is left out: a process killed mid-write
    tore it, and a resume drops it too; a bad line anywhere else still raises (the file is damaged)."""
    if not path.is_file():
        return []
    *lines, tail = path.read_text(encoding="utf-8").split("\n")  # tail is "" when the last line is whole
    records = [json.loads(line) for line in lines if line.strip()]
    try:
        records += [json.loads(tail)] if tail.strip() else []
    except json.JSONDecodeError:
        pass
    return records


def rewind_metrics(path: Path, step: int) -> int:
    """Drop what a crashed process logged after the checkpoint at `step`, before a resumed run logs it again.

    Keeps records up to and including `step` (a resumed run starts at step + 1), drops
    earlier `end` records (the run did not end there) and a torn last line from a
    process killed mid-write. Rewritten through a temporary file and a rename, so a
    kill during the rewind leaves the old file whole. Returns how many records were dropped.
    """
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        if record.get("event") == "end" or record.get("step", 0) > step:
            dropped += 1
            continue
        kept.append(line)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    os.replace(tmp, path)
    return dropped
