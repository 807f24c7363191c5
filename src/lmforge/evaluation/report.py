"""`lmforge report`: one page, from the run directory alone, that says how a run went and what its model does;
written as report.html, self-contained (images inlined, no scripts, no links out) to open or mail anywhere, and as
report.md, whose images are files beside it.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from lmforge.evaluation.verdict import Verdict, diagnose, eval_records

if TYPE_CHECKING:
    from lmforge.run import Run

EVALS_DIR = "evals"


# ---------------------------------------------------------------------- reading the run


def read_samples(path: Path) -> list[tuple[int, str, str]]:
    """(step, header, text) for each sample in samples.txt, in file order."""
    if not path.is_file():
        return []
    parts = re.split(r"^=== step (\d+)([^\n]*)\n", path.read_text(encoding="utf-8", errors="replace"), flags=re.M)
    return [(int(parts[i]), f"step {parts[i]}{parts[i + 1]}", parts[i + 2].rstrip("\n"))
            for i in range(1, len(parts) - 2, 3)]


def result_path(run_dir: str | Path, kind: str, name: str) -> Path:
    """Where `eval --save`, `probe --save` and `report --data/--suite` keep a result: RUN_DIR/evals/KIND-NAME.json."""
    return Path(run_dir) / EVALS_DIR / f"{kind}-{name}.json"


def fresh_results(load: Callable[[], Run], run_dir: str | Path, data: list[str], suites: list[str],
                  stride: int | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """`report --data/--suite`: evaluate and probe the run `load()` gives first (once, and only after every suite
    has been read and checked); each result with its `result_path`."""
    from functools import cache

    from lmforge.evaluation.perplexity import evaluate_run
    from lmforge.evaluation.probes import load_suite, probe_run

    load = cache(load)
    for suite in suites:
        load_suite(suite)
    results = [(result_path(run_dir, "eval", Path(d).stem), evaluate_run(load(), d, stride=stride)) for d in data]
    return results + [probe_run(load, run_dir, suite)[::2] for suite in suites]


def saved_results(run_dir: Path) -> dict[str, list[tuple[Path, dict[str, Any]]]]:
    """The JSON results in RUN_DIR/evals/, by kind: eval, probe, study."""
    found: dict[str, list[tuple[Path, dict[str, Any]]]] = {"eval": [], "probe": [], "study": []}
    for path in sorted((run_dir / EVALS_DIR).glob("*.json")):
        kind = path.stem.split("-", 1)[0]
        if kind in found:
            try:
                found[kind].append((path, json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError):
                continue  # a broken result file is left out, not fatal to the page
    return found


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def draw_current_curves(records: list[dict[str, Any]], run_dir: Path, path: Path) -> Path | None:
    """curves.png redrawn at `path` from metrics.jsonl as it is now (falls back to the run's own file)."""
    from lmforge.training.logs import draw_curves

    try:
        draw_curves(records, path)
        return path
    except (KeyError, TypeError, ValueError):
        existing = run_dir / "curves.png"
        return existing if existing.is_file() else None


# ---------------------------------------------------------------------- the sections, in Markdown


def overview_section(records: list[dict[str, Any]], config: dict[str, Any]) -> str:
    start = next((r for r in records if r.get("event") == "start"), {})
    end = next((r for r in reversed(records) if r.get("event") == "end"), {})
    model, data, train = config.get("model", {}), config.get("data", {}), config.get("train", {})
    rows = [
        ["model", f"{model.get('family', '?')}: {model.get('n_layer', '?')} layers, {model.get('n_embd', '?')} wide, "
                  f"context {model.get('block_size', '?')}" + (f", {start['params']:,} parameters" if "params" in start else "")],
        ["tokenizer", f"{data.get('tokenizer', '?')}" + (f", vocabulary {start['vocab_size']:,}" if "vocab_size" in start else "")],
        ["data", f"{data.get('path') or 'the built-in corpus'}" + (f" ({start['train_tokens']:,} train / "
                 f"{start['val_tokens']:,} val tokens)" if "train_tokens" in start else "")],
        ["training", ("counted in one pass over the train split" if end.get("reason") == "counted" else
                      f"{end.get('step', '?')} of {train.get('max_steps', '?')} steps, stopped by {end.get('reason', '?')}")
                     + (f", {end['elapsed_s']:.0f} s" if isinstance(end.get("elapsed_s"), (int, float)) else "")
                     + (f" on {start['device']}" if "device" in start else "")],
    ]
    whole = end.get("whole_val")
    if isinstance(whole, dict):  # the evals scored a sample of the val split (train.eval_tokens); this is all of it
        rows.append(["whole val split", f"best model (step {whole.get('step', '?')}): val loss "
                     f"{_fmt(whole.get('val_loss'))} nats/token, perplexity {_fmt(whole.get('val_ppl'), 3)}, "
                     f"{_fmt(whole.get('val_bpb'))} bits/byte over {_fmt(whole.get('val_tokens'))} tokens; "
                     f"the evals scored {_fmt(train.get('eval_tokens')) or 'a sample'} of them"])
    return "## Run\n\n" + markdown_table(["", ""], rows)


def verdict_section(verdict: Verdict, evals: list[dict[str, Any]]) -> str:
    lines = ["## Verdict", "", f"**{verdict.label}**", "", *(f"- {e}" for e in verdict.evidence), ""]
    if verdict.best_step is not None:
        best = next(r for r in evals if int(r["step"]) == verdict.best_step)
        lines += [f"Best step: **{verdict.best_step}**, val loss {best['val_loss']:.4f} nats/token"
                  + (f", perplexity {best['val_ppl']:.3f}" if "val_ppl" in best else "")
                  + (f", {best['val_bpb']:.4f} bits/byte" if "val_bpb" in best else "")
                  + ". model.safetensors holds the weights of this step.", ""]
    return "\n".join(lines + [f"What to do: {verdict.advice}."])


def history_section(evals: list[dict[str, Any]], best_step: int | None, limit: int = 40) -> str:
    shown = evals
    if len(evals) > limit:  # evenly spaced, always with the best and the last
        idx = {round(i * (len(evals) - 1) / (limit - 1)) for i in range(limit)}
        idx |= {i for i, r in enumerate(evals) if int(r["step"]) == best_step}
        shown = [evals[i] for i in sorted(idx)]
    rows = [[f"{r['step']}{' (best)' if int(r['step']) == best_step else ''}", _fmt(r.get("train_loss")),
             _fmt(r.get("val_loss")), _fmt(r.get("val_ppl"), 3), _fmt(r.get("val_bpb")),
             _fmt(r.get("tokens_seen")), _fmt(r.get("lr"), 6)] for r in shown]
    note = f"{len(shown)} of {len(evals)} evals shown.\n\n" if len(shown) < len(evals) else ""
    return "## Eval history\n\n" + note + markdown_table(
        ["step", "train loss", "val loss", "val ppl", "val bits/byte", "tokens seen", "lr"], rows)


def file_evals_section(results: list[tuple[Path, dict[str, Any]]]) -> str:
    rows = [[d.get("data", p.stem), _fmt(d.get("loss")), _fmt(d.get("perplexity"), 3), _fmt(d.get("bits_per_byte")),
             _fmt(d.get("tokens")), _fmt(d.get("stride"))] for p, d in results]
    return "## Evals on text files\n\n" + markdown_table(
        ["data", "loss", "perplexity", "bits/byte", "tokens", "stride"], rows)


def probes_section(results: list[tuple[Path, dict[str, Any]]]) -> str:
    parts = ["## Probes"]
    for _, d in results:
        by_type = [[t, v["passed"], v["total"]] for t, v in d.get("by_type", {}).items()]
        checks = [[c["probe"], c["type"], "pass" if c["passed"] else "FAIL", c["detail"]] for c in d.get("checks", [])]
        parts += [f"Suite {d.get('suite', '?')}: {d.get('passed', 0)} of {d.get('total', 0)} checks passed "
                  f"({d.get('pass_rate', 0.0):.0%}).", markdown_table(["check", "passed", "total"], by_type),
                  markdown_table(["probe", "check", "result", "detail"], checks)]
    return "\n\n".join(parts)


def study_section(results: list[tuple[Path, dict[str, Any]]]) -> str:
    from lmforge.evaluation.decoding_study import table_rows

    parts = ["## Decoding study"]
    for path, d in results:
        parts += [", ".join(f"{k} {v}" for k, v in d["settings"].items())] if d.get("settings") else []
        try:
            parts.append(markdown_table(*table_rows(d.get("strategies", []))))
        except (KeyError, TypeError, ValueError):
            parts.append(f"{path.name} is not a study result this version can read; rerun `lmforge study`")
            continue
        parts.append("\n".join(f"- {r['strategy']}: {r.get('example', '')!r}" for r in d.get("strategies", [])))
        parts += [image(path.with_suffix(".png"), "decoding study")] if path.with_suffix(".png").is_file() else []
    return "\n\n".join(parts)


def samples_section(samples: list[tuple[int, str, str]], best_step: int | None) -> str:
    if not samples:
        return "## Samples\n\nsamples.txt holds no samples."
    chosen = [x for x in samples if x[0] == best_step][-1:]
    if samples[-1] not in chosen:
        chosen.append(samples[-1])
    return "## Samples\n\n" + "\n\n".join(f"*{header}{' (best)' if step == best_step else ''}*\n\n{fenced(text)}"
                                           for step, header, text in chosen)


# ---------------------------------------------------------------------- Markdown, HTML and figures


def markdown_table(header: list[str], rows: list[list[Any]], align: str = "---") -> str:
    """A Markdown table; `|` and newlines inside a cell are escaped so they cannot break it."""
    def line(cells: list[Any]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", "\\n") for c in cells) + " |"

    return "\n".join([line(header), "|" + f"{align}|" * len(header)] + [line(row) for row in rows])


def fenced(text: str) -> str:
    """`text` in a code block whose fence no run of backticks in it can close."""
    fence = "`" * max([3] + [len(run) + 1 for run in re.findall(r"`{3,}", text)])
    return f"{fence}text\n{text}\n{fence}"


def image(path: Path, alt: str) -> str:
    """A picture by its absolute path: `write_page` makes it relative for the Markdown and inlines it for HTML."""
    return f"![{alt}]({Path(path).resolve().as_posix()})"


IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)]+)\)")
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } img { max-width: 100%; }
pre { background: #f7f7f7; padding: .8em; white-space: pre-wrap; border: 1px solid #e4e4e4; }
"""


def write_page(title: str, sections: list[str], md_path: Path, html_path: Path | None = None) -> None:
    """The Markdown page, its pictures linked beside it; and the same page as self-contained HTML (raw HTML in the
    text escaped, pictures inlined as base64, styles inline), to open or mail anywhere."""
    from markdown_it import MarkdownIt

    text = "\n\n".join([f"# {title}", *sections]) + "\n"
    relative = IMAGE.sub(lambda m: f"![{m[1]}]({Path(os.path.relpath(m[2], md_path.parent)).as_posix()})", text)
    md_path.write_text(relative, encoding="utf-8")
    if html_path is not None:
        data = lambda m: f"![{m[1]}](data:image/png;base64,{base64.b64encode(Path(m[2]).read_bytes()).decode()})"
        body = MarkdownIt("commonmark", {"html": False}).enable("table").render(IMAGE.sub(data, text))
        html_path.write_text(f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
                             f"</title><style>{STYLE}</style></head><body>\n{body}</body></html>\n", encoding="utf-8")


@contextmanager
def figure(path: Path, panels: int, size: tuple[float, float]) -> Iterator[Any]:
    """A row of `panels` axes to draw on, saved to `path` (no window opens) and closed when the block ends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=size)
    try:
        yield axes
        fig.tight_layout()
        fig.savefig(path, dpi=80)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------- the whole report


@dataclass
class ReportResult:
    html_path: Path
    markdown_path: Path
    verdict: Verdict


def build_report(run_dir: str | Path, html_path: str | Path | None = None) -> ReportResult:
    """Write report.html and report.md for `run_dir` (the HTML wherever `html_path` says, the Markdown beside it)."""
    import yaml

    from lmforge.errors import LmforgeError
    from lmforge.training.logs import read_metrics

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LmforgeError(f"run directory '{run_dir}' does not exist; train one with `lmforge train --out {run_dir}`")
    metrics_path = run_dir / "metrics.jsonl"
    if not metrics_path.is_file():
        raise LmforgeError(f"'{run_dir}' has no metrics.jsonl, so there is nothing to report; "
                           f"train a run there with `lmforge train --out {run_dir}`")
    records = read_metrics(metrics_path)
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    html_path = Path(html_path) if html_path else run_dir / "report.html"
    md_path = html_path.with_suffix(".md")
    html_path.parent.mkdir(parents=True, exist_ok=True)

    evals, verdict, saved = eval_records(records), diagnose(records), saved_results(run_dir)
    # the Markdown needs the picture as a file: the fresh one goes beside the report
    curves = draw_current_curves(records, run_dir, md_path.with_name(md_path.stem + "-curves.png"))
    sections = [overview_section(records, config), verdict_section(verdict, evals)]
    warnings = [f"- step {r.get('step', '?')}: {r['message']}" for r in records
                if r.get("event") == "warning" and r.get("message")]
    sections += ["## Warnings during training\n\n" + "\n".join(warnings)] if warnings else []
    sections.append("## Curves\n\n" + (image(curves, "train/val loss, learning rate, gradient norm") if curves
                                        else "no curves: metrics.jsonl holds no train records"))
    sections += [history_section(evals, verdict.best_step)] if evals else []
    for kind, section in (("eval", file_evals_section), ("probe", probes_section), ("study", study_section)):
        sections += [section(saved[kind])] if saved[kind] else []
    sections.append(samples_section(read_samples(run_dir / "samples.txt"), verdict.best_step))
    write_page(f"lmforge report: {run_dir.resolve().name}", sections, md_path, html_path)
    return ReportResult(html_path, md_path, verdict)
