import json

import pytest

from lmforge.data.sources import find_files, iter_parts
from lmforge.errors import LmforgeError


def documents(parts):
    """Join parts back into whole documents, checking the first/last marks."""
    docs, current = [], None
    for part in parts:
        if part.first:
            assert current is None
            current = ""
        current += part.text
        if part.last:
            docs.append(current)
            current = None
    assert current is None
    return docs


def test_folder_glob_and_file(tmp_path):
    (tmp_path / "b").mkdir()
    for name, text in [("a.txt", "alpha"), ("b/c.txt", "gamma"), (".hidden", "no"), ("b/.git/x", "no")]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert [p.name for p in find_files(tmp_path)] == ["a.txt", "c.txt"]
    assert [p.name for p in find_files(str(tmp_path / "**" / "*.txt"))] == ["a.txt", "c.txt"]
    assert find_files(tmp_path / "a.txt") == [tmp_path / "a.txt"]
    with pytest.raises(LmforgeError, match="matches no files"):
        find_files(str(tmp_path / "*.md"))
    with pytest.raises(LmforgeError, match="does not exist"):
        find_files(tmp_path / "nope.txt")


def test_a_text_file_is_one_document_in_parts_cut_at_safe_points(tmp_path):
    text = "\ufeff" + "word " * 1000 + "Ünïcödé ☃\r\n" * 100
    (tmp_path / "a.txt").write_text(text, encoding="utf-8", newline="")
    parts = list(iter_parts([tmp_path / "a.txt"], chunk_chars=100))
    assert len(parts) > 10 and all(len(p.text) <= 100 for p in parts)
    assert documents(parts) == [text[1:]]  # byte-order mark dropped, \r\n kept
    assert sum(p.nbytes for p in parts) == len(text.encode())


def test_separator_cuts_documents_and_skips_empty_ones(tmp_path):
    (tmp_path / "a.txt").write_text("one\n\ntwo\n\n\n\nthree " + "x" * 50 + "\n\n")
    docs = documents(iter_parts([tmp_path / "a.txt"], separator="\n\n", chunk_chars=7))
    assert docs == ["one", "two", "three " + "x" * 50]


def test_jsonl_one_document_per_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [{"text": "first"}, {"text": ""}, {"text": "sécond"}]) + "\n\n")
    assert documents(iter_parts([path])) == ["first", "sécond"]
    other = tmp_path / "d.json"
    other.write_text(json.dumps({"body": "x", "id": 1}) + "\n")
    assert documents(iter_parts([other], text_field="body")) == ["x"]


@pytest.mark.parametrize("content, fragments", [
    ('{"text": "ok"}\n{"txt": "no"}\n', ["d.jsonl:2", "no text field 'text'", "txt", "--text-field"]),
    ('{"text": "ok"}\nnot json\n', ["d.jsonl:2", "not valid JSON"]),
])
def test_bad_jsonl_names_the_line(tmp_path, content, fragments):
    (tmp_path / "d.jsonl").write_text(content)
    with pytest.raises(LmforgeError) as exc:
        list(iter_parts([tmp_path / "d.jsonl"]))
    for fragment in fragments:
        assert fragment in str(exc.value)


def test_binary_and_non_utf8_files_are_named(tmp_path):
    (tmp_path / "bin.txt").write_bytes(b"abc\x00def")
    with pytest.raises(LmforgeError, match="bin.txt' looks binary"):
        list(iter_parts([tmp_path / "bin.txt"]))
    (tmp_path / "latin.txt").write_bytes(b"ok " * 10 + b"caf\xe9")
    with pytest.raises(LmforgeError, match="not UTF-8 .*offset 33.*iconv"):
        list(iter_parts([tmp_path / "latin.txt"]))
