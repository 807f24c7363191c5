"""The first run (`scripts/demo.sh`): the default preset evaluates often and cheaply, and the README shows the
lines the demo prints, in the format `lmforge train` prints them."""

import re
from pathlib import Path

from lmforge.config import Config

README = Path(__file__).resolve().parents[1] / "README.md"
BEST_LINE = re.compile(r"best val loss (\d+\.\d{4}) nats/token at step (\d+) \(whole val split\): "
                       r"val perplexity (\d+\.\d{3}), (\d+\.\d{4}) bits/byte")


def demo_output() -> list[str]:
    """The lines of the README's block that shows the end of the demo's output."""
    after = README.read_text(encoding="utf-8").split("ends with these lines", 1)[1]
    return after.split("```", 2)[1].strip("\n").splitlines()


def test_the_default_preset_evaluates_often_on_a_sample_of_the_val_split():
    t = Config.from_preset("default").train  # from_preset validates
    assert t.max_steps // t.eval_interval >= 5  # enough val points for `lmforge report` to read a trend from
    assert 0 < t.eval_tokens <= 32768  # a sample: the built-in corpus's val split is 1.2 M characters
    assert t.optimizer == "muon"


def test_the_readme_shows_the_lines_the_demo_prints():
    cfg = Config.from_preset("default")
    lines = demo_output()
    m = cfg.model
    assert lines[0].startswith(f"training a transformer ({m.n_layer} layers, {m.n_embd} wide, context "
                               f"{m.block_size}), ") and f"for {cfg.train.max_steps} steps on cpu → runs/demo-" in lines[0]
    assert re.fullmatch(r"run saved to runs/demo-\d{8}-\d{6}", lines[1]), lines[1]
    best = BEST_LINE.fullmatch(lines[2])
    assert best, lines[2]
    step = int(best[2])
    assert step % cfg.train.eval_interval == 0 and step <= cfg.train.max_steps
    assert float(best[4]) <= 2.30  # the bound on the default preset
    assert lines[3] == "--- sample ---" and lines[4].startswith(cfg.sample.prompt)
