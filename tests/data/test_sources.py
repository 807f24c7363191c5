import json
from pathlib import Path

import pytest

from lmforge.data.sources import file_chunks, find_files, is_jsonl, read_chunk
from lmforge.errors import LmforgeError


def read(files, chunk_bytes=1 << 20, **kw):
    """Every chunk's pieces, in order: [(text, ends), ...]."""
    return [piece for chunk in file_chunks(files, chunk_bytes=chunk_bytes, **kw) for piece in read_chunk(chunk)]


def documents(pieces):
    """Join pieces back into whole documents; a document begins at its first piece with text."""
    docs, current = [], ""
    for text, ends in pieces:
        current += text
        if ends:
            if current:
                docs.append(current)
            current = ""
    assert current == ""
    return docs


def test_folder_glob_and_file(tmp_path):
    (tmp_path / "b").mkdir()
    for name, text in [("a.txt", "alpha"), ("b/c.txt", "gamma"), (".hidden", "no"), ("b/.git/x", "no")]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert [p.name for p in find_files(tmp_path)] == ["a.txt", "c.txt"]
    assert [p.name for p in find_files(str(tmp_path / "**" / "*.txt"))] == ["a.txt", "c.txt"]
    assert find_files(tmp_path / "a.txt") == [tmp_path / "a.txt"]
    (tmp_path / "many").mkdir()
    names = [f"{i:02d}.txt" for i in (7, 3, 11, 0, 9, 1, 5)]  # created out of order
    for name in names:
        (tmp_path / "many" / name).write_text("x")
    for spec in (tmp_path / "many", str(tmp_path / "many" / "*.txt")):  # every run reads them in one order
        assert [p.name for p in find_files(spec)] == sorted(names)
    with pytest.raises(LmforgeError, match="matches no files"):
        find_files(str(tmp_path / "*.md"))
    with pytest.raises(LmforgeError, match="does not exist"):
        find_files(tmp_path / "nope.txt")


def test_a_text_file_is_one_document_in_chunks_cut_at_safe_points(tmp_path):
    text = "\ufeff" + "word " * 1000 + "Ünïcödé ☃\r\n" * 100
    (tmp_path / "a.txt").write_text(text, encoding="utf-8", newline="")
    chunks = list(file_chunks([tmp_path / "a.txt"], chunk_bytes=100))
    assert len(chunks) > 10 and all(0 < c.end - c.start <= 100 for c in chunks)
    assert [c.start for c in chunks[1:]] == [c.end for c in chunks[:-1]] and chunks[-1].end == len(text.encode())
    pieces = read([tmp_path / "a.txt"], 100)
    assert documents(pieces) == [text[1:]]  # byte-order mark dropped, \r\n kept
    for (left, _), (right, _) in zip(pieces, pieces[1:]):  # every cut after a non-space, before a space or newline
        assert not left[-1].isspace() and right[0] in " \n"


def test_a_cut_ends_a_chunk_and_its_document(tmp_path):
    """One text's train/val cut (a byte offset) ends the train part as a document, whatever the chunk size."""
    (tmp_path / "a.txt").write_text("aaa bbb ccc")
    chunks = [(c.start, c.end, c.ends) for c in file_chunks([tmp_path / "a.txt"], cut=7)]
    assert chunks == [(0, 7, True), (7, 11, True)]
    assert documents(read([tmp_path / "a.txt"], cut=7)) == ["aaa bbb", " ccc"]


def test_a_forced_cut_inside_a_character_moves_to_its_end(tmp_path):
    (tmp_path / "a.txt").write_text("☃" * 50, encoding="utf-8")  # 3 bytes each, no safe point anywhere
    chunks = list(file_chunks([tmp_path / "a.txt"], chunk_bytes=5))  # byte 5 is inside the second snowman
    assert [(c.start, c.end) for c in chunks] == [(i, i + 6) for i in range(0, 150, 6)]


def test_only_a_byte_order_mark_at_the_start_of_a_file_is_dropped(tmp_path):
    (tmp_path / "a.txt").write_text("\ufeffab\ufeffcd", encoding="utf-8")  # no safe point: cut at the limit
    pieces = read([tmp_path / "a.txt"], chunk_bytes=5)
    assert [text for text, _ in pieces] == ["ab", "\ufeffcd"] and documents(pieces) == ["ab\ufeffcd"]


def test_jsonl_suffixes_in_any_case():
    assert is_jsonl(Path("a.JSONL"), None) and is_jsonl(Path("a.NDJson"), None) and not is_jsonl(Path("a.txt"), None)
    assert is_jsonl(Path("a.txt"), "body")  # a named text field makes any file JSONL


@pytest.mark.parametrize("chunk_bytes", [1, 3, 7, 1 << 20])
def test_separator_cuts_documents_and_skips_empty_ones(tmp_path, chunk_bytes):
    (tmp_path / "a.txt").write_text("one\n\ntwo\n\n\n\nthree " + "x" * 50 + "\n\n\nfour\n\n")
    docs = documents(read([tmp_path / "a.txt"], chunk_bytes, separator="\n\n"))
    assert docs == ["one", "two", "three " + "x" * 50, "\nfour"]  # as str.split finds them, whatever the chunks


@pytest.mark.parametrize("chunk_bytes", [2, 5, 1 << 20])
def test_no_chunk_cuts_a_separator_in_two(tmp_path, chunk_bytes):
    text = "".join(f"doc {i} ends\n---\nhere " for i in range(20))
    (tmp_path / "a.txt").write_text(text)
    assert documents(read([tmp_path / "a.txt"], chunk_bytes, separator="\n---\n")) == [
        d for d in text.split("\n---\n") if d]


def test_jsonl_one_document_per_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [{"text": "first"}, {"text": ""}, {"text": "sécond"}]) + "\n\n")
    for chunk_bytes in (1, 10, 1 << 20):
        assert documents(read([path], chunk_bytes)) == ["first", "sécond"]
    path.write_text(json.dumps({"text": "no newline"}) + "\n" + json.dumps({"text": "after it"}))  # at the end
    for chunk_bytes in (1, 10, 1 << 20):
        assert documents(read([path], chunk_bytes)) == ["no newline", "after it"]
    other = tmp_path / "d.json"
    other.write_text(json.dumps({"body": "x", "id": 1}) + "\n")
    assert documents(read([other], text_field="body")) == ["x"]


@pytest.mark.parametrize("content, fragments", [
    ('{"text": "ok"}\n{"txt": "no"}\n', ["d.jsonl:2", "no text field 'text'", "txt", "--text-field"]),
    ('{"text": "ok"}\nnot json\n', ["d.jsonl:2", "not valid JSON"]),
    ('{"text": "ok"}\n{"text": 5}\n', ["d.jsonl:2", "text field 'text' is not a string (5)"]),
])
def test_bad_jsonl_names_the_line(tmp_path, content, fragments):
    (tmp_path / "d.jsonl").write_text(content)
    with pytest.raises(LmforgeError) as exc:
        read([tmp_path / "d.jsonl"], chunk_bytes=3)  # the bad line's chunk counts the lines before it
    for fragment in fragments:
        assert fragment in str(exc.value)


def test_binary_and_non_utf8_files_are_named(tmp_path):
    for head in (b"abc", b"text " * 1000):  # a NUL anywhere in the first 64 KiB
        (tmp_path / "bin.txt").write_bytes(head + b"\x00def")
        with pytest.raises(LmforgeError, match="bin.txt' looks binary"):
            read([tmp_path / "bin.txt"])
    (tmp_path / "latin.txt").write_bytes(b"ok " * 10 + b"caf\xe9 ok")
    for chunk_bytes in (4, 1 << 20):
        with pytest.raises(LmforgeError, match="not UTF-8 .*offset 33.*iconv"):
            read([tmp_path / "latin.txt"], chunk_bytes)
