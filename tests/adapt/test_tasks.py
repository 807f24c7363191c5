"""The built-in tasks: right answers, and no test year or address seen in training."""

from __future__ import annotations

import json
import re

import pytest

from lmforge.adapt.tasks import century, century_paragraphs, president_pairs, write_tasks
from lmforge.errors import LmforgeError


def years(rows, key):
    return {re.search(r"\b(1[789]\d\d|20\d\d)\b", r[key]).group() for r in rows}


def test_president_pairs_answer_right_and_hold_out_years():
    pairs = president_pairs()
    lincoln = {"prompt": "Which president delivered the State of the Union of 1863?\n", "completion": "Abraham Lincoln"}
    assert lincoln in pairs["test"] and lincoln not in pairs["train"]
    assert {"prompt": "Which president delivered the State of the Union of 1862?\n",
            "completion": "Abraham Lincoln"} in pairs["train"]
    assert years(pairs["train"], "prompt").isdisjoint(years(pairs["test"], "prompt"))
    assert all(y[-1] in "37" for y in years(pairs["test"], "prompt"))
    assert len(pairs["test"]) > 40


def test_century_paragraphs_label_by_the_address_year():
    assert [century(y) for y in (1790, 1800, 1801, 1900, 2001, 2026)] == ["18th", "18th", "19th", "19th", "21st", "21st"]
    rows = century_paragraphs(per_class=20)
    assert {r["label"] for r in rows["test"]} == {"18th", "19th", "20th", "21st"}
    assert all(len(r["text"]) >= 200 for r in rows["train"])
    assert not {r["text"] for r in rows["train"]} & {r["text"] for r in rows["test"]}


def test_write_tasks(tmp_path):
    paths = write_tasks(tmp_path)
    assert sorted(p.name for p in paths) == ["century.test.jsonl", "century.train.jsonl", "president.test.jsonl",
                                             "president.train.jsonl"]
    first = json.loads((tmp_path / "president.train.jsonl").read_text().splitlines()[0])
    assert first == {"prompt": "Which president delivered the State of the Union of 1790?\n",
                     "completion": "George Washington"}


def test_write_tasks_into_a_file_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("keep")
    with pytest.raises(LmforgeError, match="--out .*notes.txt' is a file"):
        write_tasks(tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "keep"
