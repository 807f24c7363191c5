"""Probes: every check type passes when it should and fails when it should, on a model whose output is known."""

import json

import pytest

from lmforge.cli import main
from lmforge.errors import LmforgeError
from lmforge.evaluation.probes import load_suite, parse_probe, run_probe, run_suite, shipped_suites


def check(run, **probe):
    [result] = run_probe(run, parse_probe(probe, "test", "p"))
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
    ('{"prompts": ["a"], "agree_on": "first_word"}', "at least two 'prompts'"),
    ('{"prompts": ["a", "b"], "contains": "x"}', "takes 'choices' or 'agree_on'"),
    ('{"prompt": "a", "contains": "b", "top_p": 2}', "'top_p' must be in (0, 1]"),
    ('{"prompt": "a", "prompts": ["a", "b"], "contains": "b"}', "not both"),
    ('{"prompt": "a", "contains": ""}', "non-empty string"),
    ('not json', "suite.jsonl:1: not valid JSON"),
])
def test_bad_probes_are_named_with_their_line(tmp_path, line, fragment):
    suite = tmp_path / "suite.jsonl"
    suite.write_text(line + "\n")
    with pytest.raises(LmforgeError) as exc:
        load_suite(suite)
    assert fragment in str(exc.value) and "suite.jsonl:1" in str(exc.value)


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
    assert main(["probe", str(tiny_run), "--suite", "sotu", "--min-pass", "2"]) == 2
