import numpy as np
import pytest

from lmforge.data import PreparedData, ShardedTokens, random_batch
from lmforge.data.shards import ShardWriter
from lmforge.errors import LmforgeError


def test_sharded_tokens_read_like_one_array():
    shards = [np.arange(0, 7), np.arange(7, 7), np.arange(7, 20), np.arange(20, 23)]
    view, flat = ShardedTokens(shards), np.arange(23)
    assert len(view) == 23
    rows = np.random.default_rng(0).integers(0, 23, size=(5, 9))
    assert np.array_equal(view[rows], flat[rows])
    for s in (slice(None), slice(3, 15), slice(19, None), slice(5, 5), slice(0, 23, 4)):
        assert np.array_equal(view[s], flat[s])
    assert np.array_equal(view[np.array([-1, 0])], [22, 0])
    with pytest.raises(IndexError):
        view[np.array([23])]


def test_random_windows_may_cross_shards():
    import torch

    view = ShardedTokens([np.arange(0, 10, dtype=np.uint16), np.arange(10, 30, dtype=np.uint16)])
    x, y = random_batch(view, 64, 6, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.equal(y, x + 1) and int(x.min()) == 0 and int(y.max()) == 29


@pytest.mark.parametrize("shard_tokens, sizes", [(5, [6, 7, 2]), (4, [4, 9, 2])])  # a shard of 4 is full at 4
def test_writer_closes_shards_at_document_boundaries(tmp_path, shard_tokens, sizes):
    w = ShardWriter(tmp_path, "train", np.uint16, shard_tokens=shard_tokens)
    for doc in ([1, 2, 3], [4], [5, 6, 7, 8, 9, 10], [11]):  # 4, 2, 7 and 2 ids with their EOS
        w.begin_document()
        w.write(np.array(doc), nbytes=len(doc))
        w.end_document(0)
    summary = w.close()
    assert [s["tokens"] for s in summary["shards"]] == sizes and summary["bytes"] == 11
    assert summary["documents"] == 4 and sum(s["documents"] for s in summary["shards"]) == 4
    if shard_tokens == 5:
        assert np.fromfile(tmp_path / "train-00001.bin", dtype=np.uint16).tolist() == [5, 6, 7, 8, 9, 10, 0]


def test_missing_or_truncated_shards_are_named(tmp_path):
    from lmforge.data.prepare import PrepareOptions, prepare
    from lmforge.tokenizers import train_tokenizer

    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(30):
        (folder / f"{i}.txt").write_text(f"text number {i}")
    tok = train_tokenizer("char", "text number 0123456789", documents=True)
    prepare(folder, tok, tmp_path / "out", PrepareOptions(workers=1, progress=False))
    shard = tmp_path / "out" / "train-00000.bin"
    shard.write_bytes(shard.read_bytes()[:-2])
    with pytest.raises(LmforgeError, match="train-00000.bin' is missing or has the wrong size"):
        PreparedData(tmp_path / "out").split("train")
    (tmp_path / "out" / "index.json").write_text("{}")
    with pytest.raises(LmforgeError, match="corrupt"):
        PreparedData(tmp_path / "out")
