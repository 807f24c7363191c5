import pytest

from lmforge.tokenizers import CharTokenizer, WordTokenizer
from lmforge.tokenizers.inspect import inspect_tokenizer


def test_counts_rates_and_costs_for_a_word_vocabulary():
    tok = WordTokenizer.train("the cat the dog the end", vocab_size=4)  # " the", " cat", unk, eos
    report = inspect_tokenizer(tok, ["the cat", " the zebra"], top=3)  # "the" and " zebra" are unknown
    assert report.tokens == len(tok.encode("the cat")) + len(tok.encode(" the zebra"))
    assert report.bytes == len("the cat the zebra") and report.chars == report.bytes
    assert report.unknown == 2 and report.used == 3  # " the", " cat", unk
    assert report.unknown_rate == pytest.approx(report.unknown / report.tokens)
    assert report.tokens_per_byte == pytest.approx(report.tokens / report.bytes)
    assert report.embedding_params == {128: 4 * 128, 384: 4 * 384, 768: 4 * 768}
    assert [(t["id"], t["count"]) for t in report.frequent] == [(2, 2), (0, 1), (1, 1)]  # unk twice; ties by id
    assert report.coverage == 0.75


def test_longest_and_most_frequent_tokens():
    tok = CharTokenizer.train("aaab")
    report = inspect_tokenizer(tok, ["aaab", "a"], top=2)
    assert [t["token"] for t in report.frequent] == ["'a'", "'b'"]
    assert report.frequent[0]["count"] == 4 and report.frequent[0]["share"] == pytest.approx(0.8)
    assert report.used == 2 and report.coverage == 1.0
    text = report.format()
    assert "tokens per byte" in text and "coverage" in text and "n_embd 384" in text


def test_longest_tokens_leave_out_the_specials_and_frequent_ones_the_unused():
    tok = WordTokenizer([" a", " bbb", " cc"])  # then <|unk|> and <|endoftext|>, longer than any word
    report = inspect_tokenizer(tok, [" a a cc"], top=5)
    assert [(t["token"], t["bytes"]) for t in report.longest] == [("' bbb'", 4), ("' cc'", 3), ("' a'", 2)]
    assert [(t["token"], t["count"]) for t in report.frequent] == [("' a'", 2), ("' cc'", 1)]
