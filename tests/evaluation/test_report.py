"""The run report: the verdict and its evidence, the best step, and one self-contained HTML page."""

import json
import re
import shutil

import pytest

from lmforge.cli import main
from lmforge.evaluation.verdict import diagnose

# val falls to its minimum at step 400, then rises while train keeps falling
OVERFIT = [(100, 2.60, 2.65), (200, 2.00, 2.10), (300, 1.60, 1.80), (400, 1.30, 1.70), (500, 1.00, 1.75),
           (600, 0.80, 1.85), (700, 0.60, 1.98), (800, 0.45, 2.10)]
# both still falling fast at the end, close together
UNDERFIT = [(10, 3.90, 3.92), (20, 3.50, 3.52), (30, 3.20, 3.23), (40, 3.00, 3.02)]


def evals(curve):
    """Eval records with just what the verdict reads."""
    return [{"event": "eval", "step": step, "train_loss": train, "val_loss": val} for step, train, val in curve]


def test_verdict_overfitting_names_the_best_step_and_the_evidence():
    v = diagnose(evals(OVERFIT))
    assert v.label == "overfitting" and v.best_step == 400 and v.best_val_loss == 1.70
    assert "lowest, 1.7000, at step 400 and rose to 2.1000 by step 800" in v.evidence[0]
    assert "gap widened from 0.4000 to 1.6500" in v.evidence[1]


def test_verdict_underfitting_when_val_still_falls():
    v = diagnose(evals(UNDERFIT))
    assert v.label == "underfitting" and v.best_step == 40
    assert "still falling" in v.evidence[0] and "gap at the end is small" in v.evidence[1]


def test_verdict_diverging_when_both_losses_rise():
    v = diagnose(evals([(1, 2.0, 2.0), (2, 1.5, 1.55), (3, 2.5, 2.55)]))
    assert v.label == "diverging" and v.best_step == 2 and "did not widen" in v.evidence[1]


def test_verdict_good_fit_when_val_flattens():
    v = diagnose(evals([(100, 2.0, 2.1), (200, 1.6, 1.70), (300, 1.55, 1.695), (400, 1.54, 1.693)]))
    assert v.label == "good fit" and v.best_step == 400


def test_verdict_small_wiggles_are_not_overfitting():
    v = diagnose(evals([(100, 2.0, 2.1), (200, 1.6, 1.700), (300, 1.58, 1.705)]))  # +0.3%: within 1%
    assert v.label == "good fit"


def test_verdict_with_one_eval_is_inconclusive():
    assert diagnose(evals([(10, 2.0, 2.0)])).label == "inconclusive"
    assert diagnose([]).label == "inconclusive"


def batch_losses(losses):
    return [{"event": "train", "step": 10 * (i + 1), "loss": loss} for i, loss in enumerate(losses)]


def test_verdict_with_one_eval_reads_the_batch_train_loss():
    one_eval = evals([(200, 2.0, 2.05)])
    falling = diagnose(batch_losses([3.0 - 0.05 * i for i in range(20)]) + one_eval)
    assert falling.label == "underfitting" and "still falling" in falling.evidence[1]
    flat = diagnose(batch_losses([2.0 + 0.01 * (-1) ** i for i in range(20)]) + one_eval)
    assert flat.label == "inconclusive" and "flattened" in flat.evidence[1]


def test_verdict_keeps_the_latest_record_of_a_step_after_a_resume():
    records = evals([(100, 2.0, 2.0), (200, 1.0, 9.0)]) + evals([(200, 1.5, 1.5)])  # step 200 re-run
    v = diagnose(records)
    assert v.best_step == 200 and v.best_val_loss == 1.5


@pytest.mark.parametrize("last_val, label", [(2.5, "good fit"), (2.5625, "overfitting")])
def test_verdict_val_must_rise_by_more_than_the_tolerance(last_val, label):
    """"Rose by more than" the tolerance: a rise of exactly 25% of 2.0 (exact in binary) is not overfitting."""
    v = diagnose(evals([(100, 3.0, 3.0), (200, 1.5, 2.0), (400, 1.0, last_val)]), tolerance=0.25)
    assert v.label == label


def test_verdict_rising_val_without_train_loss_is_overfitting():
    """With no train loss there is no gap to read: a val rise is taken as overfitting, not as divergence."""
    records = [{"event": "eval", "step": s, "val_loss": v} for s, v in ((100, 2.0), (200, 1.5), (300, 1.9))]
    v = diagnose(records)
    assert v.label == "overfitting" and v.best_step == 200 and len(v.evidence) == 1


def test_verdict_trend_compares_the_last_eval_with_an_earlier_one():
    """Two evals far apart: the trend is from the first to the last, never the last against itself."""
    v = diagnose(evals([(100, 3.0, 3.0), (400, 2.0, 2.02)]))
    assert v.label == "underfitting" and "3.0000 at step 100 → 2.0200 at step 400" in v.evidence[0]


@pytest.mark.parametrize("train_loss, size", [(1.95, "small"), (1.8, "large")])  # gaps of 2.5% and 10% of 2.0
def test_verdict_calls_a_gap_over_5_percent_of_val_large(train_loss, size):
    v = diagnose(evals([(100, 3.0, 3.0), (200, 2.1, 2.0), (300, train_loss, 2.0)]))
    assert v.label == "good fit" and f"gap at the end is {size}" in v.evidence[1]


def test_verdict_ignores_evals_whose_val_loss_is_not_finite():
    v = diagnose(evals(UNDERFIT) + evals([(50, 3.0, float("nan")), (60, 3.0, float("inf"))]))
    assert v.label == "underfitting" and v.best_step == 40 and "at step 40" in v.evidence[0]


@pytest.mark.parametrize("late, label", [(2.03, "inconclusive"), (2.05, "underfitting")])
def test_verdict_with_one_eval_needs_the_batch_loss_to_fall_by_more_than_2_percent(late, label):
    """Steps 10..200: the reference is steps 140-150 (65-75%), the end steps 190-200 (the last 10%)."""
    losses = [late] * 18 + [2.0, 2.0]  # falls by 1.5% (within 2%) or 2.5% over the last 10%
    v = diagnose(batch_losses(losses) + evals([(200, 2.0, 2.05)]))
    assert v.label == label


def test_verdict_with_one_eval_reads_the_batch_loss_at_65_to_75_and_over_90_percent_of_the_steps():
    # steps 10..130 high, 140-150 at 2.0, 160-180 low, 190-200 at 2.0: flat only between the two right windows
    losses = [3.0] * 13 + [2.0, 2.0] + [0.5] * 3 + [2.0, 2.0]
    v = diagnose(batch_losses(losses) + evals([(200, 2.0, 2.05)]))
    assert v.label == "inconclusive"
    assert "mean 2.0000 over steps 130-150 → 2.0000 over the last 10% of steps" in v.evidence[1]


def assert_self_contained(page):
    assert page.startswith("<!DOCTYPE html>")
    assert "data:image/png;base64," in page
    assert not re.search(r"<(script|link|iframe)\b", page, re.I)
    assert not re.search(r"(src|href)\s*=\s*[\"'](?!data:)", page, re.I), "a reference to an outside file"
    assert "http://" not in page and "https://" not in page


def test_report_on_an_overfitted_run(capsys, synthetic_run):
    run = synthetic_run("overfit", OVERFIT)
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "verdict: overfitting; best step 400" in out
    page = (run / "report.html").read_text()
    assert_self_contained(page)
    assert "<strong>overfitting</strong>" in page and "Best step: <strong>400</strong>" in page
    assert "rose to 2.1000 by step 800" in page
    md = (run / "report.md").read_text()
    assert "**overfitting**" in md and "Best step: **400**" in md and "| 400 (best) |" in md
    image = re.search(r"!\[[^\]]*\]\(([^)]+)\)", md).group(1)
    assert (run / image).read_bytes()[:4] == b"\x89PNG"  # the Markdown's picture is a file beside it


def test_report_escapes_model_text_and_keeps_it_in_its_code_block(capsys, synthetic_run):
    """A sample is the model's text: raw HTML in it is shown, not run, and a ``` in it cannot end its code block."""
    run = synthetic_run("hostile", OVERFIT)
    (run / "samples.txt").write_text("=== step 800\nhi <script>alert(1)</script>\n```\n# not a heading\n")
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert_self_contained(page)
    assert "hi &lt;script&gt;alert(1)&lt;/script&gt;\n```\n# not a heading" in page and "<h1># not" not in page
    md = (run / "report.md").read_text()
    assert "````text\nhi <script>alert(1)</script>\n```\n# not a heading\n````" in md


def test_report_lists_the_warnings_logged_in_training(capsys, synthetic_run):
    run = synthetic_run("warned", OVERFIT)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"event": "warning", "step": 500, "message": "val loss rose from 1.70 to 1.75"}) + "\n")
    assert main(["report", str(run)]) == 0
    assert "step 500: val loss rose from 1.70 to 1.75" in (run / "report.md").read_text()


def test_report_on_an_underfitted_run(capsys, synthetic_run):
    run = synthetic_run("underfit", UNDERFIT)
    assert main(["report", str(run)]) == 0
    assert "verdict: underfitting; best step 40" in capsys.readouterr().out
    assert "<strong>underfitting</strong>" in (run / "report.html").read_text()


def test_report_on_a_real_short_run_says_underfitting_and_includes_saved_results(capsys, tmp_path, tiny_run,
                                                                                 small_text_file):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    suite = tmp_path / "mine.jsonl"
    suite.write_text(json.dumps({"id": "colon", "prompt": "All", "contains": "QQ", "max_new_tokens": 4}) + "\n")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("All:\n")
    assert main(["study", str(run), "--prompts", str(prompts), "--strategies", "greedy,t=1.0", "--samples", "2",
                 "--max-new-tokens", "8"]) == 0
    capsys.readouterr()
    assert main(["report", str(run), "--data", str(small_text_file), "--suite", str(suite),
                 "--out", str(tmp_path / "out" / "page.html")]) == 0
    out = capsys.readouterr().out
    assert "verdict: underfitting; best step 10" in out
    page = (tmp_path / "out" / "page.html").read_text()
    assert_self_contained(page)
    assert page.count("data:image/png;base64,") == 2  # the curves and the decoding study
    for fragment in ("Eval history", "Evals on text files", "small.txt", "Probes", "colon", "FAIL",
                     "Decoding study", "greedy", "Samples", "step 10"):
        assert fragment in page, fragment
    assert (run / "evals" / "probe-mine.json").is_file() and (run / "evals" / "eval-small.json").is_file()
    assert (tmp_path / "out" / "page.md").is_file()


def test_report_without_metrics_is_one_line(capsys, tmp_path):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no metrics.jsonl" in err


def test_report_out_a_folder_is_one_line_and_writes_nothing(capsys, tmp_path, tiny_run):
    folder = tmp_path / "reports"
    folder.mkdir()
    assert main(["report", str(tiny_run), "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--out" in err and "is a folder" in err, err
    assert list(tmp_path.iterdir()) == [folder] and not list(folder.iterdir())


def test_every_evaluation_command_has_help_with_examples(capsys):
    for command in ("eval", "probe", "study", "regress", "report"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        assert "examples:" in capsys.readouterr().out, command
