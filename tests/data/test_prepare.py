import json

import numpy as np
import pytest

from lmforge.data import PreparedData, split_documents
from lmforge.data import prepare as prepare_module
from lmforge.data.inputs import text_cut
from lmforge.data.inputs import in_val
from lmforge.data.prepare import PrepareOptions, prepare
from lmforge.errors import LmforgeError
from lmforge.tokenizers import BpeTokenizer, CharTokenizer, train_tokenizer

DOCS = [f"Document {i}: " + "the quick brown fox jumps over the lazy dog. " * (i % 7 + 1) + "Ünïcödé ☃ 日本\n"
        for i in range(60)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    for i, doc in enumerate(DOCS):
        (folder / f"doc{i:03d}.txt").write_text(doc, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def char_tok():
    return train_tokenizer("char", DOCS, documents=True)


def options(**kw):
    return PrepareOptions(progress=False, **{"workers": 1, **kw})


def read_split(out, split):
    data = PreparedData(out)
    return [data.tokenizer.decode(d[:-1].tolist()) for d in split_documents(data.split(split), data.tokenizer.eos_id)]


def test_every_document_ends_with_eos_and_goes_to_one_split(corpus, char_tok, tmp_path):
    result = prepare(corpus, char_tok, tmp_path / "out", options(seed=3))
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["dtype"] == "uint16" and index["eos_id"] == char_tok.eos_id and index["vocab_size"] == char_tok.vocab_size
    expected_val = [d for i, d in enumerate(DOCS) if in_val(3, i, 0.1)]
    assert 0 < len(expected_val) < len(DOCS)
    assert read_split(tmp_path / "out", "val") == expected_val
    assert read_split(tmp_path / "out", "train") == [d for i, d in enumerate(DOCS) if not in_val(3, i, 0.1)]
    for split in ("train", "val"):
        s = index["splits"][split]
        docs = expected_val if split == "val" else [d for d in DOCS if d not in expected_val]
        assert s["tokens"] == sum(len(d) + 1 for d in docs) and s["documents"] == len(docs)
        assert s["bytes"] == sum(len(d.encode()) for d in docs)
    assert result.splits == index["splits"] and result.mb_per_s > 0
    assert PreparedData(tmp_path / "out").tokenizer.to_dict() == char_tok.to_dict()


@pytest.fixture(scope="module")
def bpe():
    return BpeTokenizer.train(DOCS, vocab_size=300)


@pytest.mark.parametrize("layout", ["folder", "jsonl", "separator", "one text"])
def test_same_ids_whatever_the_workers_chunks_and_shards(corpus, bpe, tmp_path, layout):
    """1 worker reading 1 MB chunks and 2 reading 50-byte ones write the same shards: each document's ids as if
    encoded whole (then its EOS), or for one text, each side of the cut's ids as `train` makes them in memory."""
    text, separator, data = "\n\n".join(DOCS), None, corpus
    if layout == "jsonl":
        data = tmp_path / "docs.jsonl"
        data.write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS), encoding="utf-8")
    elif layout != "folder":
        data = tmp_path / "docs.txt"
        data.write_text(text, encoding="utf-8")
        separator = "\n\n" if layout == "separator" else None
    prepare(data, bpe, tmp_path / "one", options(workers=1, separator=separator))
    prepare(data, bpe, tmp_path / "two", options(workers=2, separator=separator, chunk_bytes=50, shard_tokens=200))
    one, two = PreparedData(tmp_path / "one"), PreparedData(tmp_path / "two")
    for split in ("train", "val"):
        assert np.array_equal(one.split(split)[:], two.split(split)[:])
    if layout == "one text":
        cut = text_cut(text, 0.1)
        assert one.split("train")[:].tolist() == bpe.encode(text[:cut])
        assert one.split("val")[:].tolist() == bpe.encode(text[cut:])
        return
    docs = [d for d in text.split("\n\n") if d] if separator else DOCS
    expected = [i for n, doc in enumerate(docs) if not in_val(1337, n, 0.1) for i in [*bpe.encode(doc), bpe.eos_id]]
    assert one.split("train")[:].tolist() == expected
    assert len(two.index["splits"]["train"]["shards"]) > 3
    for shard in two.index["splits"]["train"]["shards"]:  # a shard holds whole documents
        ids = np.fromfile(tmp_path / "two" / shard["file"], dtype=np.uint16)
        assert ids[-1] == bpe.eos_id and (ids == bpe.eos_id).sum() == shard["documents"]


def test_ids_wider_than_16_bits_are_stored_as_uint32(tmp_path):
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 70000) if not 0xD800 <= c <= 0xDFFF]  # 67,952 characters
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps({"text": chars[-1] * 3 + str(i)}) for i in range(30)))
    tok = CharTokenizer(chars + [str(i) for i in range(10)], specials={"eos": "<|endoftext|>"})
    prepare(tmp_path / "d.jsonl", tok, tmp_path / "out", options(val_fraction=0.3))
    data = PreparedData(tmp_path / "out")
    assert data.index["dtype"] == "uint32" and data.split("train").dtype == np.dtype("<u4")
    assert int(data.split("train")[0]) == len(chars) - 1


def test_an_interrupted_run_leaves_no_index_and_no_whole_looking_half_shard(corpus, char_tok, tmp_path, monkeypatch):
    calls = []
    real = prepare_module.encode_chunk

    def failing(chunk, tokenizer=None):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(chunk, tokenizer)

    monkeypatch.setattr(prepare_module, "encode_chunk", failing)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        prepare(corpus, char_tok, out, options(chunk_bytes=200, shard_tokens=300))
    assert not (out / "index.json").exists() and not list(out.glob("*.tmp"))
    for shard in out.glob("*.bin"):  # shards that were finished before the interrupt are whole
        ids = np.fromfile(shard, dtype=np.uint16)
        assert ids[-1] == char_tok.eos_id
    with pytest.raises(LmforgeError, match="no index.json.*interrupted"):
        PreparedData(out)
    monkeypatch.setattr(prepare_module, "encode_chunk", real)
    prepare(corpus, char_tok, out, options())  # a rerun clears the leftovers
    assert sorted(p.name for p in out.glob("*.bin")) == ["train-00000.bin", "val-00000.bin"]


def test_refusals_are_explained(corpus, char_tok, tmp_path):
    prepare(corpus, char_tok, tmp_path / "done", options())
    with pytest.raises(LmforgeError, match="already holds prepared data"):
        prepare(corpus, char_tok, tmp_path / "done", options())
    (tmp_path / "run").mkdir()  # a run directory: prepared data there would replace its tokenizer.json
    (tmp_path / "run" / "tokenizer.json").write_text("{}")
    (tmp_path / "run" / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(LmforgeError, match="holds a trained run"):
        prepare(corpus, char_tok, tmp_path / "run", options())
    assert (tmp_path / "run" / "tokenizer.json").read_text() == "{}" and not (tmp_path / "run" / "index.json").exists()
    (tmp_path / "file.txt").write_text("text")
    with pytest.raises(LmforgeError, match="--out .* is a file"):
        prepare(corpus, char_tok, tmp_path / "file.txt", options())
    with pytest.raises(LmforgeError, match="no EOS"):
        prepare(corpus, CharTokenizer.train("".join(DOCS)), tmp_path / "x", options())
    with pytest.raises(LmforgeError, match="single document.*--separator"):  # one file alone splits by position
        prepare(corpus / "doc000.txt", char_tok, tmp_path / "one", options(separator="\n\n"))
    assert list((tmp_path / "one").iterdir()) == []  # shards without an index would read as binary text to `train`
    with pytest.raises(LmforgeError, match="--val-fraction"):
        prepare(corpus, char_tok, tmp_path / "y", options(val_fraction=1.5))
