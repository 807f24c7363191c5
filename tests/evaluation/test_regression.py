"""Regression checks: worse than the baseline beyond the tolerance exits 1, otherwise 0."""

import json

import pytest

from lmforge.cli import main
from lmforge.errors import LmforgeError
from lmforge.evaluation.regression import Side, compare, format_result, regress, side_from_metrics


def sides(base_loss, cand_loss, **extra):
    return Side("baseline", {"loss": base_loss}, "b", **extra), Side("candidate", {"loss": cand_loss}, "c", **extra)


@pytest.mark.parametrize("base, cand, tol, abs_tol, regressed", [
    (1.50, 1.52, 0.01, 0.0, True),    # +0.02 > 1% of 1.50 = 0.015
    (1.50, 1.51, 0.01, 0.0, False),   # +0.01 is within it
    (1.50, 1.40, 0.0, 0.0, False),    # better is never a regression
    (1.50, 1.52, 0.0, 0.03, False),   # an absolute tolerance
    (1.50, 1.50, 0.0, 0.0, False),    # equal is not worse
    (1.50, 1.54, 0.01, 0.02, True),   # the larger of the two tolerances, 0.02, not their sum 0.035
])
def test_compare_applies_the_tolerance(base, cand, tol, abs_tol, regressed):
    result = compare(*sides(base, cand), tol, abs_tol)
    assert result.regressed is regressed
    assert result.checks[0].allowed == pytest.approx(max(tol * base, abs_tol))
    assert result.checks[0].delta == pytest.approx(cand - base)  # positive: the candidate is worse


def test_one_regressed_metric_is_a_regression():
    base = Side("baseline", {"loss": 1.0, "bits_per_byte": 1.2}, "b")
    cand = Side("candidate", {"loss": 0.9, "bits_per_byte": 1.3}, "c")
    result = compare(base, cand, 0.01, 0.0)
    assert [c.regressed for c in result.checks] == [False, True] and result.regressed
    assert format_result(result).endswith("regression: bits_per_byte")


def test_a_note_says_when_the_two_sides_measure_different_text():
    assert compare(*sides(1.0, 1.0, data="a.txt"), 0.01, 0.0).notes == []
    base, cand = Side("baseline", {"loss": 1.0}, "b", "a.txt"), Side("candidate", {"loss": 1.0}, "c", "b.txt")
    [note] = compare(base, cand, 0.01, 0.0).notes
    assert "different text (a.txt vs b.txt)" in note


def test_loss_per_token_is_not_compared_across_tokenizers():
    base = Side("baseline", {"loss": 1.0, "bits_per_byte": 1.2}, "b", tokenizer="char")
    cand = Side("candidate", {"loss": 3.0, "bits_per_byte": 1.1}, "c", tokenizer="bpe")
    result = compare(base, cand, 0.01, 0.0)
    assert [c.metric for c in result.checks] == ["bits_per_byte"] and not result.regressed
    assert "tokenizers differ" in result.notes[0]


@pytest.mark.parametrize("tol, abs_tol", [(-0.01, 0.0), (0.01, -0.1), (float("nan"), 0.0), (0.0, float("nan")), (float("inf"), 0.0)])
def test_a_tolerance_that_is_not_a_finite_number_0_or_more_is_refused(tol, abs_tol):
    with pytest.raises(LmforgeError, match="--tolerance and --abs-tolerance must be finite numbers, 0 or more"):
        compare(*sides(1.0, 9.0), tol, abs_tol)


def test_nothing_to_compare_is_an_error():
    with pytest.raises(LmforgeError, match="no metric"):
        compare(Side("b", {}, "b"), Side("c", {"loss": 1.0}, "c"), 0.01, 0.0)


def curve(best_val):
    return [(10, best_val + 0.5, best_val + 0.5), (20, best_val, best_val)]


def test_cli_regress_between_run_directories(capsys, synthetic_run):
    base = synthetic_run("base", curve(1.50))
    worse = synthetic_run("worse", curve(1.60))
    same = synthetic_run("same", curve(1.505))
    assert main(["regress", str(worse), "--baseline", str(base)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSED" in out and "regression: loss" in out
    assert main(["regress", str(same), "--baseline", str(base)]) == 0
    assert "no regression" in capsys.readouterr().out
    assert main(["regress", str(worse), "--baseline", str(base), "--abs-tolerance", "0.2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["regressed"] is False


def test_a_run_directory_is_judged_by_its_best_eval_not_its_last(synthetic_run):
    run = synthetic_run("dip", [(10, 2.0, 1.5), (20, 1.0, 1.8)])  # val best at step 10, then worse
    side = side_from_metrics(run, "baseline")
    assert side.metrics == {"loss": 1.5, "bits_per_byte": 1.5 / 0.6931}  # the val_bpb the conftest writes
    assert side.source == "best eval in metrics.jsonl (step 10)"


def test_a_stride_given_on_the_command_line_overrides_the_saved_evals(tmp_path, tiny_run, small_text_file):
    saved = tmp_path / "base.json"
    saved.write_text(json.dumps({"loss": 9.0, "bits_per_byte": 9.0, "data": str(small_text_file), "stride": 32}))
    assert regress(tiny_run, saved).candidate.stride == 32  # measured as the baseline was
    result = regress(tiny_run, saved, stride=8)
    assert result.candidate.stride == 8 and result.candidate.source.endswith("(stride 8)")


def test_two_saved_evals_compare_without_reading_their_data(tmp_path):
    """Two eval JSONs hold their numbers already: the file they name need not exist here."""
    for name, loss, bpb in (("base", 1.5, None), ("cand", 1.6, 2.0)):  # a missing or null number is left out
        (tmp_path / f"{name}.json").write_text(json.dumps({"loss": loss, "bits_per_byte": bpb, "data": "gone.txt"}))
    result = regress(tmp_path / "cand.json", tmp_path / "base.json")
    assert [(c.metric, c.regressed) for c in result.checks] == [("loss", True)]


def test_cli_regress_against_a_saved_eval_json(capsys, tmp_path, tiny_run, small_text_file):
    assert main(["eval", str(tiny_run), "--data", str(small_text_file), "--json"]) == 0
    saved = json.loads(capsys.readouterr().out)
    baseline = tmp_path / "base.json"
    baseline.write_text(json.dumps(saved))
    # the run is evaluated on the file the baseline names: the same model measures the same
    assert main(["regress", str(tiny_run), "--baseline", str(baseline)]) == 0
    assert "eval of" in capsys.readouterr().out
    saved["loss"] *= 0.9  # a baseline 10% better than the run
    saved["bits_per_byte"] *= 0.9
    baseline.write_text(json.dumps(saved))
    assert main(["regress", str(tiny_run), "--baseline", str(baseline)]) == 1
    assert main(["regress", str(tiny_run), "--baseline", str(baseline), "--tolerance", "0.2"]) == 0


@pytest.mark.parametrize("command", [["regress", "--baseline", "{run}"], ["compare", "{run}"], ["report"]])
def test_a_damaged_metrics_file_is_one_line(capsys, synthetic_run, command):
    run = synthetic_run("damaged", curve(1.5))
    (run / "metrics.jsonl").write_text('{"event": "start"}\n{"event": "eval", "ste\n{"event": "end"}\n')
    assert main([command[0], str(run), *(a.format(run=run) for a in command[1:])]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "metrics.jsonl' is not JSON lines" in err, err


def test_cli_regress_bad_baseline_is_one_line(capsys, tmp_path, tiny_run):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["regress", str(tiny_run), "--baseline", str(bad)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "lmforge eval RUN --data PATH --json" in err
    assert main(["regress", str(tiny_run), "--baseline", str(tmp_path / "none")]) == 2
    assert "neither a run directory nor an eval JSON" in capsys.readouterr().err
