import pytest

from lmforge.corpus import builtin_corpus, read_text
from lmforge.errors import LmforgeError


def test_builtin_corpus_is_installed_text():
    text = builtin_corpus()
    assert len(text) > 10_000_000
    assert text.startswith("Fellow-Citizens of the Senate and House of Representatives")


@pytest.mark.parametrize(
    "content, message",
    [(b"", "is empty"), (b"  \n\n", "is empty"), (b"\x89PNG\r\n\x1a\n\x00\x00", "looks binary"),
     (b"caf\xe9 au lait", "not UTF-8 text .*offset 3.*iconv")],
)
def test_bad_files_are_explained(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(LmforgeError, match=message):
        read_text(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(LmforgeError, match="does not exist"):
        read_text(tmp_path / "nope.txt")
    with pytest.raises(LmforgeError, match="is a folder"):
        read_text(tmp_path)


def test_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffhello".encode())
    assert read_text(path) == "hello"
