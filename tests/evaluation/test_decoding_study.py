"""The decoding study: its metrics on texts with known answers, and strategies compared on a known model."""

import json
import math

import pytest

from lmforge.cli import main
from lmforge.errors import LmforgeError
from lmforge.evaluation.decoding_study import (
    Strategy,
    distinct_n,
    parse_strategies,
    read_prompts,
    repetition_rate,
    run_study,
)


def test_distinct_n_pools_all_texts():
    assert distinct_n(["a b a b"], 1) == 2 / 4
    assert distinct_n(["a b a b"], 2) == 2 / 3  # (a b), (b a), (a b)
    assert distinct_n(["a b", "a b"], 1) == 2 / 4  # the same text twice is not diverse
    assert distinct_n(["a", "b"], 2) == 0.0  # no pairs at all


def test_repetition_rate_counts_repeated_4_grams():
    assert repetition_rate("a b c d e f g") == 0.0
    assert repetition_rate("a b c d a b c d") == pytest.approx(1 - 4 / 5)  # 5 four-grams, 4 distinct
    assert repetition_rate("x x x x x x") == pytest.approx(1 - 1 / 3)
    assert repetition_rate("too short") == 0.0


def test_parse_strategies():
    got = parse_strategies("greedy, temperature=0.7,k=40,top_p=0.9,t=0.8+p=0.95")
    assert got == [Strategy("greedy", greedy=True), Strategy("temperature=0.7", temperature=0.7),
                   Strategy("k=40", top_k=40), Strategy("top_p=0.9", top_p=0.9),
                   Strategy("t=0.8+p=0.95", temperature=0.8, top_p=0.95)]


@pytest.mark.parametrize("spec, fragment", [("temp=0.7", "cannot read"), ("t=abc", "needs a number"),
                                            ("t=0", "temperature > 0"), ("t=nan", "temperature > 0"),
                                            ("t=inf", "finite temperature"), ("p=1.5", "top_p"), ("greedy,greedy", "twice"),
                                            (",", "empty")])
def test_bad_strategies_name_the_flag(spec, fragment):
    with pytest.raises(LmforgeError, match="--strategies") as exc:
        parse_strategies(spec)
    assert fragment in str(exc.value)


def test_read_prompts(tmp_path):
    plain = tmp_path / "p.txt"
    plain.write_text("ROMEO:\\nBut\n\n  \nJULIET:\n")
    assert read_prompts(plain) == ["ROMEO:\nBut", "JULIET:"]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"prompt": "a\\nb"}\n"c"\n# comment\n{"prompts": ["c", "d"]}\n')
    assert read_prompts(jsonl) == ["a\nb", "c", "d"]
    assert "Fellow-Citizens of the Senate and House of " in read_prompts("sotu")  # the shipped probe suite
    jsonl.write_text('{"text": "a"}\n')
    with pytest.raises(LmforgeError, match="p.jsonl:1: needs a non-empty"):
        read_prompts(jsonl)
    with pytest.raises(LmforgeError, match="does not exist"):
        read_prompts(tmp_path / "none.txt")
    plain.write_bytes(b"caf\xe9\n")  # Latin-1
    with pytest.raises(LmforgeError, match="--prompts .*p.txt' is not UTF-8"):
        read_prompts(plain)


def test_strategies_differ_as_they_should(cycle_run):
    """On a model that is sure of the cycle but not certain, greedy loops exactly; hot sampling wanders."""
    cycle_run.model.strength = 3.0
    results = {r.strategy: r for r in run_study(cycle_run, ["a", "d e"], parse_strategies("greedy,t=0.5,t=2.0,k=1"),
                                                max_new_tokens=120, samples=3, seed=0)}
    greedy, cool, hot, top1 = results["greedy"], results["t=0.5"], results["t=2.0"], results["k=1"]
    # greedy follows the cycle: "bcdefgh abcdefgh …", the same words over and over
    assert greedy.example.startswith("bcdefgh abcdefgh")
    assert greedy.rep_4 > 0.5 and greedy.distinct_2 < 0.2
    assert top1.mean_logprob == pytest.approx(greedy.mean_logprob) and top1.distinct_1 == greedy.distinct_1
    # greedy text is the most likely under the model; the hotter, the less likely and the more varied
    assert greedy.mean_logprob > cool.mean_logprob > hot.mean_logprob
    assert hot.distinct_2 > greedy.distinct_2 and hot.rep_4 < greedy.rep_4
    p_right = math.exp(3) / (math.exp(3) + 8)  # every greedy token is the cycle's next one
    assert greedy.mean_logprob == pytest.approx(math.log(p_right), rel=1e-5)
    assert all(r.continuations == 6 and r.length_chars == 120 for r in results.values())


def test_study_metrics_of_known_greedy_texts(cycle_run):
    """Greedy on the cycle model writes known texts; every metric worked out by hand from them."""
    [r] = run_study(cycle_run, ["a", "h"], [Strategy("greedy", greedy=True)], max_new_tokens=60, samples=1)
    # "bcdefgh" + " abcdefgh" * 5 + " abcdefg", and " abcdefgh" * 6 + " abcde": 7 words each
    assert r.example == "bcdefgh" + " abcdefgh" * 5 + " abcdefg" and r.length_chars == 60 and r.length_words == 7
    assert r.distinct_1 == pytest.approx(4 / 14)  # bcdefgh, abcdefgh, abcdefg, abcde
    assert r.distinct_2 == pytest.approx(4 / 12)  # (bcdefgh abcdefgh), (abcdefgh abcdefgh), and one ending each
    assert r.rep_4 == pytest.approx((1 / 4 + 2 / 4) / 2)  # the mean over texts: 3 of 4 and 2 of 4 4-grams distinct


def test_mean_logprob_is_the_mean_over_continuations_scored_with_windows_every_quarter_context(cycle_run):
    """A model more confident the later a token sits in its window: the log-probs show where windows start.
    With a context of 8 the study scores in windows every 2 tokens."""
    import dataclasses

    import torch

    class Ramp(type(cycle_run.model)):
        def forward(self, ids):  # the cycle's next id, with logit t + 1 at window position t
            return torch.arange(1, ids.size(1) + 1)[None, :, None] * super().forward(ids)

    run = dataclasses.replace(cycle_run, model=Ramp(9, strength=1.0), config=cycle_run.config.updated(
        {"model.block_size": 8}))
    [r] = run_study(run, ["a", "ab", "abcdefgh"], [Strategy("greedy", greedy=True)], max_new_tokens=4, samples=1)

    def logprob(t):  # of the right token at window position t, 9 tokens
        return (t + 1) - math.log(math.exp(t + 1) + 8)

    # prompts of 1 and 2 tokens: one window, positions 0-3 and 1-4; a prompt of 8: targets 8..11 of a 12-token
    # text, in windows at 0, 2 and 4, are read at positions 7, 6, 7, 6
    rows = [[0, 1, 2, 3], [1, 2, 3, 4], [7, 6, 7, 6]]
    assert r.mean_logprob == pytest.approx(sum(sum(map(logprob, row)) / 4 for row in rows) / 3, rel=1e-6)


def test_every_strategy_draws_from_the_same_seed(cycle_run):
    cycle_run.model.strength = 1.0
    same, alias = run_study(cycle_run, ["a"], parse_strategies("t=1.0,temperature=1.0"), max_new_tokens=40, samples=2)
    assert same.example == alias.example and same.distinct_2 == alias.distinct_2


def test_cli_study_prints_a_table_and_writes_a_plot(capsys, tmp_path, tiny_run):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("All:\nFirst\n")
    out_dir = tmp_path / "study"
    code = main(["study", str(tiny_run), "--prompts", str(prompts), "--strategies", "greedy,t=1.0,p=0.5",
                 "--samples", "2", "--max-new-tokens", "12", "--out", str(out_dir)])
    out = capsys.readouterr().out
    assert code == 0
    assert "distinct-1" in out and "rep-4" in out and "mean log-prob" in out and "p=0.5" in out
    saved = json.loads((out_dir / "study.json").read_text())
    assert [s["strategy"] for s in saved["strategies"]] == ["greedy", "t=1.0", "p=0.5"]
    assert (out_dir / "study.png").read_bytes()[:4] == b"\x89PNG"
    assert "| greedy |" in (out_dir / "study.md").read_text()
