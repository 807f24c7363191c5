"""Regenerate every figure, table and pasted output of the guide in docs/, with lmforge's own commands.

    python docs/make_figures.py --data tinyshakespeare.txt            # everything (about 20 min on 2 cores)
    python docs/make_figures.py --data tinyshakespeare.txt --chapters 1,2 --work /tmp/guide

It does what a reader does: runs the ```bash blocks of docs/01-*.md ... docs/08-*.md in order, in one
working directory (chapters reuse the runs of earlier ones), and keeps each block's output in
docs/figures/output/CHAPTER-N.txt (the text the chapters paste) and the time of each chapter in
docs/figures/timings.md. Then it draws the figures from what those runs wrote, each stamped with the
command behind it and the machine that made it. tests/test_docs.py parses the chapters with the
functions below, so the test and the figures read the blocks the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parent
FIGURES = DOCS / "figures"
OUTPUT = FIGURES / "output"
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*\(([^)]*)\)\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Block:
    """One fenced command block of a chapter: its code, where it is, and why the docs test skips it (if it does)."""

    path: Path
    line: int
    lang: str
    code: str
    skip: str | None

    @property
    def name(self) -> str:
        return f"{self.path.name}:{self.line}"


def chapters() -> list[Path]:
    """docs/01-*.md ... docs/08-*.md, in reading order."""
    return sorted(DOCS.glob("[0-9][0-9]-*.md"))


def command_blocks(path: Path) -> list[Block]:
    """Every ```bash and ```console block of a Markdown file. A `<!-- docs-test: skip (why) -->` line just
    before a block (blank lines between allowed) marks it as not run by the test. In a console block only the
    lines that start with `$ ` are commands."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i, skip = [], 0, None
    while i < len(lines):
        m = SKIP.search(lines[i])
        fence = FENCE.match(lines[i])
        if m:
            skip = m.group(1)
        elif fence:
            lang, start, body = fence.group(1), i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            if lang == "console":
                body = [b[2:] for b in body if b.startswith("$ ")]
            if lang in ("bash", "console"):
                blocks.append(Block(path, start, lang, "\n".join(body) + "\n", skip))
            skip = None
        elif lines[i].strip():
            skip = None
        i += 1
    return blocks


def guide_env(src: Path | None = None) -> dict[str, str]:
    """The environment the blocks run in: this Python's bin/ first on PATH (so `lmforge`, `python` and `torchrun`
    are the ones of the environment lmforge is installed in), one thread per process, no colour."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if src is not None:
        env["PYTHONPATH"] = f"{src}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return env


def clean(text: str) -> str:
    """Output as a reader would see it once the progress bars have finished: each \\r-rewritten line's last state,
    and progress bars dropped."""
    out = []
    for line in text.splitlines():
        line = line.split("\r")[-1]
        if re.search(r"\d+%\|", line) or re.search(r"\d+/\d+ \[\d", line):
            continue
        if line.strip() or not out or out[-1]:  # a finished bar leaves an empty line: keep one at most
            out.append(line.rstrip())
    return "\n".join(out).strip() + "\n"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_block(block: Block, work: Path, env: dict[str, str], timeout: float = 1800) -> tuple[int, str, float, float]:
    """Run one block with bash -e -o pipefail in `work`: (exit status, cleaned output, wall seconds, CPU seconds).
    CPU seconds (user + system of the block's processes) hardly change with the load of a shared machine."""
    start, cpu = time.perf_counter(), cpu_seconds()
    proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.code], cwd=work, env=env, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    return proc.returncode, clean(proc.stdout), time.perf_counter() - start, cpu_seconds() - cpu


OUTPUT_MARK = re.compile(r"<!-- output(?: head=(\d+))?(?: tail=(\d+))? -->")
INCLUDE_MARK = re.compile(r"<!-- include: ([\w./-]+) -->")


def fill(path: Path) -> None:
    """Paste into a chapter what its commands printed. After `<!-- output -->` the ```text block becomes the output
    of the command block above the mark (`head=N`/`tail=N` keep part of it); between `<!-- include: figures/X.md
    -->` and `<!-- /include -->` goes that file."""
    lines, out, k, i = path.read_text(encoding="utf-8").splitlines(), [], 0, 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        fence, mark, include = FENCE.match(line), OUTPUT_MARK.search(line), INCLUDE_MARK.search(line)
        if fence and fence.group(1) in ("bash", "console"):
            k += 1
        if fence:  # copy the block through, so a fence inside it is not read as a new block
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                out.append(lines[i])
                i += 1
            out.append(lines[i] if i < len(lines) else "```")
        elif mark and (OUTPUT / f"{path.stem}-{k}.txt").is_file():
            text = (OUTPUT / f"{path.stem}-{k}.txt").read_text(encoding="utf-8").strip("\n").splitlines()
            head, tail = int(mark.group(1) or 0), int(mark.group(2) or 0)
            if (head or tail) and head + tail < len(text):
                text = text[:head] + ["..."] + (text[-tail:] if tail else [])
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                i += 1
            i += 1  # past the opening fence of the old text block
            while i < len(lines) and not lines[i].startswith("```"):
                i += 1
            out += ["```text", *text, "```"]
        elif include and (DOCS / include.group(1)).is_file():
            out += (DOCS / include.group(1)).read_text(encoding="utf-8").strip("\n").splitlines()
            while i + 1 < len(lines) and "<!-- /include -->" not in lines[i + 1]:
                i += 1
        i += 1
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def machine() -> str:
    return f"{platform.machine()} CPU, {os.cpu_count()} cores shared with other jobs, OMP_NUM_THREADS=1"


def run_guide(work: Path, numbers: set[int] | None, src: Path | None) -> list[tuple[str, int, float]]:
    """Run the chapters' blocks in order in `work`, saving each block's output; (chapter, blocks, seconds)."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    env, timings = guide_env(src), []
    for path in chapters():
        number = int(path.name[:2])
        if numbers and number not in numbers:
            continue
        total, total_cpu, ran = 0.0, 0.0, 0
        for k, block in enumerate(command_blocks(path), 1):
            if block.skip:
                continue
            rc, out, seconds, cpu = run_block(block, work, env)
            total, total_cpu, ran = total + seconds, total_cpu + cpu, ran + 1
            (OUTPUT / f"{path.stem}-{k}.txt").write_text(out, encoding="utf-8")
            print(f"{block.name}: {seconds:.1f} s ({cpu:.1f} s CPU), exit {rc}", flush=True)
            if rc != 0:
                sys.exit(f"{block.name} failed:\n{out[-3000:]}")
        timings.append((path.stem, ran, total, total_cpu))
    return timings


def write_timings(timings: list[tuple[str, int, float, float]]) -> None:
    """Merge these chapters' times into figures/timings.json (a run of some chapters keeps the others') and write
    the table the index includes."""
    saved = FIGURES / "timings.json"
    merged = {t[0]: t for t in json.loads(saved.read_text()) } if saved.is_file() else {}
    merged.update({t[0]: t for t in timings})
    timings = [merged[k] for k in sorted(merged)]
    saved.write_text(json.dumps(timings, indent=1) + "\n", encoding="utf-8")
    rows = [f"| {name} | {n} | {wall / 60:.1f} | {cpu / 60:.1f} |" for name, n, wall, cpu in timings]
    total, cpu = sum(t[2] for t in timings), sum(t[3] for t in timings)
    text = ("| chapter | command blocks | minutes (wall clock) | CPU minutes |\n| --- | --- | --- | --- |\n"
            + "\n".join(rows)
            + f"\n| **all** | {sum(t[1] for t in timings)} | **{total / 60:.1f}** | {cpu / 60:.1f} |\n\n"
            f"Measured by `python docs/make_figures.py` on {time.strftime('%Y-%m-%d')}: {machine()} "
            f"(load average {os.getloadavg()[0]:.1f} at the end).\n")
    (FIGURES / "timings.md").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Tiny Shakespeare (copied into the working directory)")
    parser.add_argument("--work", default=None, help="working directory (default: a fresh one under /tmp)")
    parser.add_argument("--chapters", default="", help="comma-separated chapter numbers (default: all)")
    parser.add_argument("--figures-only", action="store_true", help="draw from an earlier --work, run nothing")
    args = parser.parse_args(argv)
    work = Path(args.work or f"/tmp/lmforge-guide-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "tinyshakespeare.txt").exists():
        shutil.copy(args.data, work / "tinyshakespeare.txt")
    numbers = {int(n) for n in args.chapters.split(",") if n}
    src = DOCS.parent / "src"
    if not args.figures_only:
        timings = run_guide(work, numbers, src if src.is_dir() else None)
        write_timings(timings)
        print(json.dumps(timings))
    sys.path.insert(0, str(DOCS))
    from plots import draw_all  # docs/plots.py: the figures, kept apart from the runner

    draw_all(work, numbers, machine())
    for path in chapters():
        if not numbers or int(path.name[:2]) in numbers:
            fill(path)
    fill(DOCS / "README.md")  # the timings table
    return 0


if __name__ == "__main__":
    sys.exit(main())
