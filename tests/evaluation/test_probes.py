"""Probes: every check type passes when it should and fails when it should, on a model whose output is known."""

import json
import math

import pytest
import torch

from lmforge.cli import main
from lmforge.config import Config
from lmforge.errors import LmforgeError
from lmforge.evaluation.probes import load_suite, parse_probe, run_suite, shipped_suites
from lmforge.models.base import LanguageModel
from lmforge.run import Run
from lmforge.tokenizers.bpe import BpeTokenizer
from lmforge.tokenizers.word import WordTokenizer


def check(run, **probe):
    kind = parse_probe(probe, "test", "p")
    [result] = kind.run(run)
    return result


def test_the_cycle_model_continues_as_expected(cycle_run):
    assert cycle_run.generate("a", 10, greedy=True) == "abcdefgh ab"


@pytest.mark.parametrize("kind, passing, failing", [
    ("contains", "cde", "ca"),
    ("contains", ["zz", "h ab"], ["zz", "hh"]),  # a list: any one alternative passes
    ("not_contains", "ca", "cd"),
    ("not_contains", ["zz", "qq"], ["zz", "gh"]),  # a list: none may appear
    ("regex", r"^bc.*h a", r"^c"),
])
def test_continuation_checks_pass_and_fail(cycle_run, kind, passing, failing):
    good = check(cycle_run, prompt="a", max_new_tokens=10, **{kind: passing})
    bad = check(cycle_run, prompt="a", max_new_tokens=10, **{kind: failing})
    assert (good.type, good.passed) == (kind, True), good.detail
    assert (bad.type, bad.passed) == (kind, False), bad.detail
    assert bad.outputs["continuation"] == "bcdefgh ab"


def test_ignore_case(cycle_run):
    assert not check(cycle_run, prompt="a", contains="CDE").passed
    assert check(cycle_run, prompt="a", contains="CDE", ignore_case=True).passed


def test_sampled_continuations_are_reproducible_and_use_the_sampler(cycle_run):
    cycle_run.model.strength = 0.0  # uniform: sampling gives varied text, greedy always the first id
    a = check(cycle_run, prompt="a", contains="zz", temperature=1.0, seed=3, max_new_tokens=30)
    b = check(cycle_run, prompt="a", contains="zz", temperature=1.0, seed=3, max_new_tokens=30)
    greedy = check(cycle_run, prompt="a", contains="zz", max_new_tokens=30)
    assert a.outputs == b.outputs
    assert greedy.outputs["continuation"] == " " * 30 != a.outputs["continuation"]


def test_choices_ranked_by_log_likelihood_pass_and_fail(cycle_run):
    good = check(cycle_run, prompt="a", choices=["bc", "cb", "hh"], answer="bc")
    bad = check(cycle_run, prompt="a", choices=["bc", "cb"], answer=1)
    assert (good.type, good.passed, bad.passed) == ("choices", True, False)
    scores = good.outputs["scores"]
    assert scores["bc"] > scores["cb"] and scores["bc"] > scores["hh"]
    assert "ranked 'bc' first, not 'cb'" in bad.detail


def test_length_normalized_choices(cycle_run):
    """Summed log-likelihood favours short choices; per byte, a long likely choice can win."""
    cycle_run.model.strength = 2.0
    probe = {"prompt": "a", "choices": ["c", "bcdefgh"], "answer": "bcdefgh"}  # c: unlikely but short
    assert not check(cycle_run, **probe).passed
    assert check(cycle_run, **probe, length_normalize=True).passed


# A BPE tokenizer learns " 1861" as one token from this text, so "June 30, 18" + "61" encoded apart
# (" 18", "61") is not how the tokenizer writes "June 30, 1861" (" 1861").
BPE_TEXT = "On June 30, 1861 the war went on. " * 20 + "In 1816 it snowed in June. " * 3


class BigramModel(LanguageModel):
    """log p(next | token) from the bigram counts of `ids` (add-0.01 smoothing): a model trained on those ids."""

    family = "bigram"

    def __init__(self, ids: list[int], vocab_size: int):
        super().__init__()
        counts = torch.full((vocab_size, vocab_size), 0.01)
        for a, b in zip(ids, ids[1:]):
            counts[a, b] += 1
        self.register_buffer("logp", (counts / counts.sum(1, keepdim=True)).log())

    def forward(self, ids):
        return self.logp[ids]  # (B, T, V)


@pytest.fixture
def bpe_run(tmp_path):
    tok = BpeTokenizer.train(BPE_TEXT, vocab_size=300)
    return Run(tmp_path, Config(), tok, BigramModel(tok.encode(BPE_TEXT), tok.vocab_size), torch.device("cpu"))


@pytest.mark.parametrize("prompt, choices", [
    ("June 30, 18", ["16", "61"]),  # the prompt ends inside the token " 1861"
    ("June 30, ", ["1816", "1861"]),  # the prompt ends in a space that BPE writes into " 1861"
])
def test_choices_are_scored_as_the_tokenizer_writes_prompt_and_choice_together(bpe_run, prompt, choices):
    tok = bpe_run.tokenizer
    assert tok.encode(prompt) + tok.encode(choices[1]) != tok.encode(prompt + choices[1])  # the split differs
    comma, year = tok.encode("June 30, 1861")[-2:]
    assert tok.token_bytes(year) == b" 1861"
    # scored from the first token not wholly inside the prompt: " 1861", which followed each of the 20 ","
    # in training (the comma's row: 20.01 of 20 + 0.01·V); split apart, both choices would score about ln(1/V)
    want = math.log(20.01 / (20 + 0.01 * tok.vocab_size))
    result = check(bpe_run, prompt=prompt, choices=choices, answer=1)
    assert result.passed, result.detail
    assert result.outputs["scores"][choices[1]] == pytest.approx(want, rel=1e-5)  # float32 logits: ~3e-6 off
    per_byte = check(bpe_run, prompt=prompt, choices=choices, answer=1, length_normalize=True)
    assert per_byte.outputs["scores"][choices[1]] == pytest.approx(want / len(choices[1]), rel=1e-5)


def test_a_prompt_inside_the_first_token_is_an_error(bpe_run):
    with pytest.raises(LmforgeError, match="ends inside the first token of 'June'"):
        check(bpe_run, prompt="J", choices=["une", "uly"], answer=0)


def test_split_at_prompt_compares_unknown_words_as_the_tokenizer_spells_them():
    from lmforge.evaluation.scoring import split_at_prompt

    tok = WordTokenizer.train("the united states of the", vocab_size=0)
    prompt, choice = "zebra the", " united states"  # "zebra" is unknown: its token's bytes are not the word's
    assert split_at_prompt(tok, prompt, choice) == (tok.encode(prompt), tok.encode(choice))
    assert tok.unk_id in tok.encode(prompt)


def test_consistency_of_continuations_pass_and_fail(cycle_run):
    good = check(cycle_run, prompts=["ha", " a", "ga"], max_new_tokens=10)  # all end in 'a': same continuation
    bad = check(cycle_run, prompts=["a", "c"], max_new_tokens=10)
    assert (good.type, good.passed) == ("consistency", True), good.detail
    assert (bad.type, bad.passed) == ("consistency", False)
    assert bad.outputs["keys"] == ["bcdefgh", "defgh"]


def test_consistency_agree_on_all_is_stricter(cycle_run):
    assert check(cycle_run, prompts=["a", "ha"], max_new_tokens=12, agree_on="all").passed
    assert not check(cycle_run, prompts=["g", "ab cdef"], max_new_tokens=4, agree_on="first_line").passed


def test_consistency_of_choices_pass_and_fail(cycle_run):
    assert check(cycle_run, prompts=["ga", "a"], choices=["bc", "dd"]).passed
    disagree = check(cycle_run, prompts=["a", "c"], choices=["bc", "de"])
    assert not disagree.passed and "disagree" in disagree.detail
    wrong = check(cycle_run, prompts=["ga", "a"], choices=["bc", "dd"], answer="dd")
    assert not wrong.passed and "not the answer" in wrong.detail


def test_summary_by_check_type(cycle_run, tmp_path):
    suite = tmp_path / "suite.jsonl"
    suite.write_text("\n".join(json.dumps(p) for p in [
        {"id": "one", "prompt": "a", "contains": "bc", "regex": "^x", "max_new_tokens": 5},  # two checks
        {"id": "two", "prompt": "a", "choices": ["bc", "cb"], "answer": 0},
    ]) + "\n# a comment\n\n")
    report = run_suite(cycle_run, load_suite(suite), "suite")
    by_type = report.by_type()
    assert by_type["contains"] == {"passed": 1, "total": 1, "pass_rate": 1.0}
    assert by_type["regex"]["passed"] == 0
    assert report.passed == 2 and len(report.checks) == 3


@pytest.mark.parametrize("line, fragment", [
    ('{"prompt": "a", "contain": "b"}', "unknown probe key 'contain' (did you mean 'contains'?)"),
    ('{"prompt": "a"}', "checks nothing"),
    ('{"prompt": "a", "regex": "("}', "not a valid regular expression"),
    ('{"prompt": "a", "choices": ["x", "y"]}', "needs 'answer'"),
    ('{"prompt": "a", "choices": ["x", "y"], "answer": "z"}', "not one of the choices"),
    ('{"prompts": ["a"], "agree_on": "first_word"}', "'prompts' needs at least two paraphrases"),
    ('{"prompts": ["a", "b"], "contains": "x"}', "'contains' does not go in a consistency probe (it is for a "
                                                "continuation probe); write that check as a probe of its own"),
    ('{"prompt": "a", "choices": ["x", "y"], "answer": 0, "regex": "x"}', "'regex' does not go in a multiple-choice"),
    ('{"prompt": "a", "contains": "x", "agree_on": "all"}', "(it is for a consistency probe)"),
    ('{"prompt": "a", "contains": "x"}\n{"prompt": "b", "contains": "y", "id": "line1"}', "suite.jsonl:2: probe id "
                                                                                        "'line1' is used twice"),
    ('[1, 2]', "a probe is a JSON object"),
    ('{"prompt": "a", "contains": "b", "top_p": 2}', "'top_p' must be less than or equal to 1, not 2"),
    ('{"prompt": "a", "prompts": ["a", "b"], "contains": "b"}', "not both"),
    ('{"prompt": "a", "contains": ""}', "non-empty string"),
    ('not json', "suite.jsonl:1: not valid JSON"),
])
def test_bad_probes_are_named_with_their_line(tmp_path, line, fragment):
    suite = tmp_path / "suite.jsonl"
    suite.write_text(line + "\n")
    with pytest.raises(LmforgeError) as exc:
        load_suite(suite)
    message, number = str(exc.value), line.count("\n") + 1  # the last line is the bad one
    assert fragment in message and f"suite.jsonl:{number}:" in message and "\n" not in message


def test_the_shipped_suite_loads_and_covers_every_check_type():
    suites = shipped_suites()
    assert "sotu" in suites
    types = {t for probe in load_suite("sotu") for t in probe.check_types}
    assert types == {"contains", "not_contains", "regex", "choices", "consistency"}


def test_cli_probe_summary_json_and_min_pass(capsys, tmp_path, tiny_run):
    suite = tmp_path / "half.jsonl"
    suite.write_text(json.dumps({"id": "never", "prompt": "All", "contains": "QQQQ", "max_new_tokens": 5}) + "\n"
                     + json.dumps({"id": "always", "prompt": "All", "not_contains": "QQQQ", "max_new_tokens": 5}) + "\n")
    assert main(["probe", str(tiny_run), "--suite", str(suite), "--min-pass", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "contains" in out and "not_contains" in out and "FAIL never [contains]" in out
    assert main(["probe", str(tiny_run), "--suite", str(suite), "--min-pass", "0.6", "--json"]) == 1
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["pass_rate"] == 0.5 and result["by_type"]["contains"]["passed"] == 0
    assert "under --min-pass" in err


def test_cli_probe_bad_suite_is_one_line(capsys, tmp_path, tiny_run):
    code = main(["probe", str(tiny_run), "--suite", str(tmp_path / "missing.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "does not exist" in err and "sotu" in err
    code = main(["probe", str(tiny_run), "--suite", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is a folder; pass a JSONL file of probes" in err
    assert main(["probe", str(tiny_run), "--suite", "sotu", "--min-pass", "2"]) == 2
