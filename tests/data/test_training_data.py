import numpy as np
import pytest

from lmforge.config import Config
from lmforge.data.inputs import text_cut
from lmforge.data.prepare import PrepareOptions, prepare
from lmforge.data.training import load_training_data
from lmforge.evaluation.perplexity import scored_bytes
from lmforge.tokenizers import train_tokenizer
from lmforge.tokenizers.base import ScoredBytes

TEXT = "".join(f"Line {i}: the cat sat on the mat, said speaker {i % 13}.\n" for i in range(300))


def config(tokenizer="char", vocab_size=0, path=None):
    return Config().updated({"data": {"tokenizer": tokenizer, "vocab_size": vocab_size, "path": path},
                             "model.block_size": 16})


def test_char_keeps_the_protocol_vocabulary_of_the_whole_text_and_split_at_90_percent():
    data = load_training_data(config(), TEXT)
    ids = data.tokenizer.encode_array(TEXT)
    n_train = text_cut(TEXT, 0.1)  # at 90% of the characters, moved back to a safe point
    assert 0.9 * len(TEXT) - 30 < n_train <= 0.9 * len(TEXT) and TEXT[n_train] in " \n"
    assert data.tokenizer.chars == sorted(set(TEXT)) and data.tokenizer.specials == {}
    assert np.array_equal(data.train_ids, ids[:n_train]) and np.array_equal(data.val_ids, ids[n_train:])
    assert data.val_bytes == ScoredBytes(scored_bytes(data.tokenizer, data.val_ids))


@pytest.mark.parametrize("kind, vocab_size", [("word", 0), ("bpe", 300)])
def test_word_and_bpe_learn_their_vocabulary_from_the_train_part_only(kind, vocab_size):
    text = TEXT + "Zyzzyva quux!\n" * 40  # only in the last tenth: val
    data = load_training_data(config(kind, vocab_size), text)
    train_text = data.tokenizer.decode(data.train_ids.tolist())
    cut = len(train_text)
    assert text.startswith(train_text) and "Zyzzyva" not in train_text and cut == pytest.approx(0.9 * len(text), abs=60)
    if kind == "word":
        assert data.tokenizer.encode("Zyzzyva") == [data.tokenizer.specials["unk"]]
    else:
        assert data.tokenizer.vocab_size <= 300 and len(data.tokenizer.encode("Zyzzyva")) > 1
    assert data.val_bytes.bytes == len(text[cut:].encode()) - len(data.tokenizer.token_bytes(int(data.val_ids[0])))


def test_a_prepared_directory_brings_its_tokenizer_and_split(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(40):
        (folder / f"{i:02d}.txt").write_text(TEXT[i * 300 : (i + 1) * 300])
    tok = train_tokenizer("bpe", TEXT, vocab_size=300, documents=True)
    prepare(folder, tok, tmp_path / "prep", PrepareOptions(workers=1, progress=False))
    cfg = config("char", path=str(tmp_path / "prep"))
    data = load_training_data(cfg)
    assert data.tokenizer.to_dict() == tok.to_dict()
    from lmforge.training import Trainer

    trainer = Trainer(cfg, tmp_path / "run")  # its config as run (config.yaml) names the tokenizer used
    assert trainer.cfg.data.tokenizer == "bpe" and cfg.data.tokenizer == "char"  # the given config is left alone
    assert isinstance(data.train_ids, np.memmap) and data.train_ids[-1] == tok.eos_id
    assert 0 < data.val_bytes.bytes < len(TEXT[: 40 * 300].encode()) and data.val_bytes.unknown == 0
