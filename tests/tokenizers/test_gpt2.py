"""GPT-2's vocabulary loaded from encoder.json + vocab.bpe gives tiktoken's ids, built offline from the same files."""

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings

from lmforge.errors import LmforgeError
from lmforge.tokenizers import load_gpt2, load_tokenizer, tokenizer_from_spec
from lmforge.tokenizers.bpe import gpt2_tiktoken
from text_strategies import LONE_SURROGATES, TRICKY, texts

# ../shared/data beside the checkout (a git worktree sits one folder deeper, so look in every parent)
GPT2 = next((p / "shared/data/gpt2-bpe" for p in Path(__file__).resolve().parents if (p / "shared/data").is_dir()),
            Path("../shared/data/gpt2-bpe"))
pytestmark = pytest.mark.skipif(not GPT2.is_dir(), reason="../shared/data/gpt2-bpe is absent")
SAMPLE = ("Fellow-Citizens of the Senate and House of Representatives: I've 1,234 reasons, don't you'll?\n\n"
          "   indented\tand\r\nwindows lines  \n" + "".join(TRICKY) + " Größe café naïve Ωμέγα русский текст 😀\n")


@pytest.fixture(scope="module")
def gpt2():
    return load_gpt2(GPT2)


@pytest.fixture(scope="module")
def reference():
    pytest.importorskip("tiktoken")
    return gpt2_tiktoken(GPT2)


def test_the_files_are_openais_release():
    """So `reference`, tiktoken's loader and pattern on them, is tiktoken's GPT-2 encoding (it checks these hashes)."""
    assert [hashlib.sha256((GPT2 / name).read_bytes()).hexdigest()[:16] for name in ("vocab.bpe", "encoder.json")] == [
        "1ce1664773c50f3e", "196139668be63f3b"]


def test_vocabulary_and_eos(gpt2):
    assert gpt2.vocab_size == 50257 and gpt2.eos_id == 50256
    assert gpt2.encode("Hello world") == [15496, 995]


def test_ids_equal_tiktoken_on_a_few_kb(gpt2, reference):
    from lmforge.corpus import builtin_corpus

    text = builtin_corpus()[:6000] + SAMPLE
    assert gpt2.encode(text) == reference.encode_ordinary(text)
    assert gpt2.decode(gpt2.encode(text)) == text


@pytest.mark.slow
def test_ids_equal_tiktoken_on_the_whole_builtin_corpus(gpt2, reference):
    from lmforge.corpus import builtin_corpus

    text = builtin_corpus()
    ids = gpt2.encode_array(text)
    assert ids.tolist() == reference.encode_ordinary(text)
    assert gpt2.decode(ids.tolist()) == text


@settings(max_examples=200, deadline=None)
@given(texts)
def test_any_string_round_trips_with_tiktoken_s_ids(gpt2, reference, text):
    assert gpt2.encode(text) == reference.encode_ordinary(text)
    assert gpt2.decode(gpt2.encode(text)) == text


@pytest.mark.parametrize("text", LONE_SURROGATES)
def test_lone_surrogates_are_rejected(gpt2, text):
    with pytest.raises(LmforgeError, match="lone surrogate"):
        gpt2.encode(text)


def test_folder_as_a_spec_and_saved_as_one_json(gpt2, tmp_path):
    assert tokenizer_from_spec(str(GPT2)).vocab_size == 50257
    gpt2.save(tmp_path / "gpt2.json")
    assert load_tokenizer(tmp_path / "gpt2.json").encode(SAMPLE) == gpt2.encode(SAMPLE)


def test_missing_or_corrupt_files_are_explained(tmp_path):
    with pytest.raises(LmforgeError, match="encoder.json and vocab.bpe"):
        load_gpt2(tmp_path)
    (tmp_path / "encoder.json").write_text("{oops")
    (tmp_path / "vocab.bpe").write_text("#version: 0.2\nĠ t\n")
    with pytest.raises(LmforgeError, match="corrupt"):
        load_gpt2(tmp_path)
