"""Set model families (or any runs) side by side on the same val text, in bits per byte so that different
tokenizers compare (`run_comparison`). `train_families` gives each family the same wall-clock budget: seconds, not
steps, are the fair currency between a model counted in a second and one that takes thousands of gradient steps.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
import timeit
from dataclasses import dataclass
from pathlib import Path

from lmforge.config import FAMILIES, Config
from lmforge.config_files import load_preset
from lmforge.corpus import builtin_corpus, load_corpus
from lmforge.data.inputs import Inputs, text_cut
from lmforge.data.shards import PreparedData, is_prepared_dir
from lmforge.errors import LmforgeError
from lmforge.evaluation.perplexity import EvalResult, evaluate_text
from lmforge.training.logs import read_metrics

PROBE_WARMUP_STEPS = 3  # untimed: the first steps pay for allocation and kernel selection
PROBE_STEPS = 15
EVALS_PER_RUN = 2  # evals inside the budget (each scores the whole val split), plus one when time runs out
BUDGET_MARGIN = 0.9  # plan steps for 90% of the budget; max_seconds stops the rest


@dataclass
class Row:
    name: str  # the run directory's name (its whole path where two runs share a name)
    run_dir: Path
    family: str
    model: str  # the model's own one-line description
    params: int
    train_seconds: float
    result: EvalResult
    sample: str
    curve: list[tuple[float, float]]  # (seconds since training started, val bits per byte) at each eval


# ---------------------------------------------------------------------- training each family


def parse_families(spec: str) -> list[str]:
    families = [f.strip() for f in spec.split(",") if f.strip()]
    unknown = [f for f in families if f not in FAMILIES]
    if not families or unknown:
        raise LmforgeError(f"--families takes a comma-separated list of {', '.join(FAMILIES)}, not '{spec}'")
    if len(set(families)) != len(families):
        raise LmforgeError(f"--families names a family twice ('{spec}'); list each once")
    return families


def family_config(family: str, data: str | None, seconds: float, device: str = "auto") -> Config:
    """The `compare-FAMILY` preset, on `data`, stopped after `seconds` of training."""
    # samples come after training, outside the budget
    budget = {"model.family": family, "data.path": data, "train.max_seconds": seconds, "train.device": device,
              "sample.max_new_tokens": 0}
    return Config.from_layers((f"preset 'compare-{family}'", load_preset(f"compare-{family}")), ("command line", budget))


def fit_schedule_to_budget(cfg: Config, text: str, seconds: float) -> tuple[Config, dict[str, float]]:
    """Time a few steps and one eval of a throwaway run: `cfg` with `max_steps` and `eval_interval` that fit
    `seconds` (the schedule is a function of the step: warmup and decay must fit too), and the timings."""
    from lmforge.training import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg.updated({"train.progress": False}), Path(tmp) / "probe", text=text)
        if trainer.model.fitted_by_counts:
            return cfg, {}
        for _ in range(PROBE_WARMUP_STEPS):
            trainer.train_step()
        # the median: a burst of load from other programs moves it least; reading the loss waits for the device
        # (the step itself only queues work on a GPU)
        timings = [timeit.timeit(lambda: trainer.train_step().loss, number=1) for _ in range(PROBE_STEPS)]
        step_s = statistics.median(timings)
        eval_s = timeit.timeit(trainer.evaluate, number=1)
    steps = max(1, int((seconds * BUDGET_MARGIN - EVALS_PER_RUN * eval_s) / step_s))
    schedule = {"max_steps": steps, "eval_interval": max(1, math.ceil(steps / EVALS_PER_RUN)),
                "warmup_steps": min(cfg.train.warmup_steps, max(1, steps // 10)), "decay_steps": 0}
    return cfg.updated({"train": schedule}), {"step_s": step_s, "eval_s": eval_s, "max_steps": steps}


def train_families(families: list[str], data: str | None, seconds: float, out_dir: Path, device: str = "auto",
                   log=print) -> list[Path]:
    """Train each family for `seconds` on the same text; return their run directories (out_dir/FAMILY)."""
    from lmforge.training import Trainer

    text, name = load_corpus(data)
    runs = []
    for family in families:
        run_dir = out_dir / family
        cfg = family_config(family, data, seconds, device)
        cfg, plan = fit_schedule_to_budget(cfg, text, seconds)
        trainer = Trainer(cfg, run_dir, text=text)
        how = (f"{cfg.train.max_steps} steps planned from {plan['step_s'] * 1000:.0f} ms/step" if plan
               else "counted in one pass")
        log(f"[{family}] {trainer.model.describe()} on {name}: up to {seconds:g} s, {how} → {run_dir}")
        trainer.fit()
        runs.append(run_dir)
    return runs


# ---------------------------------------------------------------------- scoring runs side by side


def val_text_of(text: str, val_fraction: float) -> str:
    """The val part of one text, cut where training cuts it (`data.inputs.text_cut`), whatever the tokenizer."""
    return text[text_cut(text, val_fraction) :]


def val_of(data: str | None, val_fraction: float, text_field: str | None = None,
           separator: str | None = None) -> str | list[str]:
    """What runs trained on `data` were validated on: one text's val part, or the val documents of a folder, glob,
    JSONL or prepared directory (read again from the inputs it recorded), by the rule training used."""
    if data is None:
        return val_text_of(builtin_corpus(), val_fraction)
    if is_prepared_dir(data):
        index = PreparedData(data).index
        try:
            inputs = Inputs(index["source"], index.get("text_field"), index.get("separator"), index["val_fraction"],
                            index["seed"])
        except LmforgeError:
            raise LmforgeError(f"the val documents of '{data}' are read from the inputs it was prepared from, "
                               f"'{index['source']}', which are gone; pass --data PATH") from None
    else:
        inputs = Inputs(data, text_field, separator, val_fraction)
    docs = inputs.val_documents()
    return docs[0] if inputs.one_text else docs


def shared_val(run_dirs: list[Path], data: str | None = None) -> tuple[str | list[str], str]:
    """`compare RUN_DIR...`: the val split the runs were validated on (or the last part of `data`), and a
    sentence that says which. Runs trained on different texts need `data`."""
    configs = []
    for d in run_dirs:
        if not (d / "config.yaml").is_file():
            raise LmforgeError(f"'{d}' has no config.yaml, so it is not a run directory; train one with "
                               f"`lmforge train --out {d}`")
        configs.append(Config.from_file(d / "config.yaml"))
    trained_on = {(c.data.path, c.data.text_field, c.data.separator, c.data.val_fraction) for c in configs}
    if data is None and len(trained_on) > 1:
        raise LmforgeError("the runs were trained on different texts; pass --data PATH to score them all on "
                           "the val split of one text")
    data, text_field, separator, val_fraction = trained_on.pop() if data is None else (
        data, None, None, configs[0].data.val_fraction)
    val = val_of(data, val_fraction, text_field, separator)  # as the runs were validated
    what = (f"the last {val_fraction:.0%} of {data or 'the built-in corpus'}" if isinstance(val, str)
            else f"the {len(val):,} val documents of {data}")
    return val, f"Runs {', '.join(str(d) for d in run_dirs)}; val text: {what}."


def seconds_text(seconds: float) -> str:
    """One decimal, but two significant digits below a second: an n-gram counts its text in hundredths."""
    return f"{seconds:.1f}" if seconds >= 1 or seconds == 0 else f"{seconds:.2g}"


def training_seconds(run_dir: Path) -> tuple[float, list[tuple[float, float]]]:
    """Seconds from the run's start event to its end (data loaded, model built: the loop and its evals), and its eval curve."""
    records = read_metrics(run_dir / "metrics.jsonl")
    start = next((r["elapsed_s"] for r in records if r["event"] == "start"), 0.0)
    end = next((r["elapsed_s"] for r in reversed(records) if r["event"] == "end"), math.nan)
    curve = [(r["elapsed_s"] - start, r["val_bpb"]) for r in records if r["event"] == "eval"]
    return end - start, curve


def compare_runs(run_dirs: list[Path], val_text: str | list[str], device: str = "auto", batch_size: int = 64,
                 max_new_tokens: int = 200, prompt: str | None = None, seed: int = 0) -> list[Row]:
    """Score every run on `val_text` (a text, or documents: `val_of`) in windows of its own context, and sample from
    each (prompt None: the run's own)."""
    import lmforge
    from lmforge.device import autocast, resolve_dtype

    names = [Path(d).name for d in run_dirs]
    rows = []
    for run_dir, name in zip(run_dirs, names):
        run = lmforge.load(run_dir, device=device)
        amp = autocast(run.device, resolve_dtype(run.config.train.dtype, run.device))
        result = evaluate_text(run.model, run.tokenizer, val_text, run.config.model.block_size, batch_size, run.device, amp)
        seconds, curve = training_seconds(Path(run_dir))
        start = (run.config.sample.prompt if prompt is None else prompt) or "\n"
        sample = run.generate(start, max_new_tokens, temperature=0.8, seed=seed) if max_new_tokens > 0 else ""
        label = str(run_dir) if names.count(name) > 1 else name
        rows.append(Row(label, Path(run_dir), run.config.model.family, run.model.describe(), run.model.num_params(),
                        seconds, result, sample, curve))
    return rows


def run_comparison(run_dirs: list[str], families: str | None, data: str | None, seconds: float, out: Path | None,
                   device: str = "auto", max_new_tokens: int = 200, prompt: str | None = None,
                   log=print) -> tuple[list[Row], Path, Path]:
    """`lmforge compare`: score `run_dirs` on the val split they share (or the last part of `data`), or first train
    each of `families` on the first 90% of `data` for `seconds`; write comparison.md and .png in `out`."""
    if bool(run_dirs) == bool(families):
        raise LmforgeError("give either run directories (lmforge compare RUN_DIR...) or --families "
                           "(lmforge compare --families ngram,rnn,transformer --data PATH), not both or neither")
    if seconds <= 0:
        raise LmforgeError(f"--seconds must be positive, not {seconds}")
    if max_new_tokens < 0:
        raise LmforgeError(f"--max-new-tokens must be 0 or more, not {max_new_tokens}")
    out = out or Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    if families:
        names = parse_families(families)
        taken = [out / f for f in names if (out / f).exists()]
        if taken:
            raise LmforgeError(f"'{taken[0]}' already exists; choose a new --out")
        dirs = train_families(names, data, seconds, out, device, log=log)
        val = val_text_of(load_corpus(data)[0], 0.1)
        about = (f"Each family trained for at most {seconds:g} s on the first 90% of {data or 'the built-in corpus'} "
                 f"(`lmforge compare --families {','.join(names)}`); val text: the last 10%.")
    else:
        dirs = [Path(d) for d in run_dirs]
        val, about = shared_val(dirs, data)
    rows = compare_runs(dirs, val, device, max_new_tokens=max_new_tokens, prompt=prompt)
    return rows, *write_comparison(rows, out, about)


# ---------------------------------------------------------------------- the report


def comparison_table(rows: list[Row]) -> str:
    from lmforge.evaluation.report import markdown_table

    return markdown_table(["run", "family", "model", "parameters", "training s", "val loss (nats/token)", "perplexity",
                           "bits/byte"], [[r.name, r.family, r.model, f"{r.params:,}", seconds_text(r.train_seconds),
                                           f"{r.result.loss:.4f}", f"{r.result.perplexity:.3f}",
                                           f"{r.result.bits_per_byte:.4f}"] for r in ranked(rows)])


def ranked(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: r.result.bits_per_byte)


def write_comparison(rows: list[Row], out_dir: Path, about: str) -> tuple[Path, Path]:
    """comparison.md (what was compared, the table, the ranking, a sample from each) and comparison.png."""
    from lmforge.evaluation.report import fenced, write_page

    out_dir.mkdir(parents=True, exist_ok=True)
    md, png = out_dir / "comparison.md", out_dir / "comparison.png"
    write_page("Comparison", [
        about, "Every model scores the same val text with its own tokenizer, in non-overlapping windows of its own "
        "context (an RNN: in consecutive windows carrying its state). Bits per byte (total bits over the text's UTF-8 "
        "bytes, an unknown word's bytes charged 8 bits each) compares models whatever their tokenizer; loss and "
        "perplexity are per token. Training seconds run from the start of training (data loaded, model built) to its "
        "end, evals included. An n-gram's parameters are its stored probabilities and backoff weights.",
        comparison_table(rows), "Ranked by val bits per byte, lowest first: " + " < ".join(r.name for r in ranked(rows))
        + ".", "## Samples", *(f"### {r.name} ({r.family})\n\n{fenced(r.sample.strip(chr(10)))}" for r in rows)], md)
    draw_comparison(rows, png)
    return md, png


def draw_comparison(rows: list[Row], path: Path) -> None:
    from lmforge.evaluation.report import figure

    colors = {r.name: f"C{i}" for i, r in enumerate(rows)}  # one colour per run in both panels
    with figure(path, 2, (12, 4.5)) as (curves, bars):
        for r in rows:
            if r.curve:
                curves.plot(*zip(*r.curve), "o-", color=colors[r.name], label=r.name)
        curves.set(title="val bits per byte during training", xlabel="training seconds", ylabel="bits/byte")
        curves.legend()
        values = [r.result.bits_per_byte for r in ranked(rows)]
        bars.bar([r.name for r in ranked(rows)], values, color=[colors[r.name] for r in ranked(rows)])
        for i, v in enumerate(values):
            bars.text(i, v, f"{v:.3f}", ha="center", va="bottom")
        bars.set(title="val bits per byte (lower is better)", ylabel="bits/byte")
