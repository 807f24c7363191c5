"""`lmforge report`: one page that says how a run went and what its model does.

The page is built from the run directory alone: the curves and the verdict from
metrics.jsonl, samples from samples.txt, and whatever `lmforge eval --save`,
`lmforge probe --save` and `lmforge study` left in RUN_DIR/evals/. It is
written twice: report.html, self-contained (images inlined as base64, styles
inline, no scripts, no links out), to open or mail anywhere; and report.md,
whose images are files beside it.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from lmforge.evaluation.verdict import Verdict, diagnose, eval_records

if TYPE_CHECKING:
    from lmforge.run import Run

EVALS_DIR = "evals"


@dataclass
class Section:
    """One part of the page: a title and blocks rendered to both HTML and Markdown.

    A block is (kind, payload): ("p", text), ("bullets", [text]), ("table", (header, rows)), ("image", (path, alt))
    or ("pre", (text, caption)); `**bold**` in text shows as bold in both."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)


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
    folder = run_dir / EVALS_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
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
    from lmforge.training.plots import draw_curves

    try:
        draw_curves(records, path)
        return path
    except (KeyError, TypeError, ValueError):
        existing = run_dir / "curves.png"
        return existing if existing.is_file() else None


# ---------------------------------------------------------------------- building the sections


def overview_section(run_dir: Path, records: list[dict[str, Any]], config: dict[str, Any]) -> Section:
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
    return Section("Run", [("table", (["", ""], rows))])


def verdict_section(verdict: Verdict, evals: list[dict[str, Any]]) -> Section:
    blocks = [("p", f"**{verdict.label}**"), ("bullets", verdict.evidence)]
    if verdict.best_step is not None:
        best = next(r for r in evals if int(r["step"]) == verdict.best_step)
        blocks.append(("p", f"Best step: **{verdict.best_step}**, val loss {best['val_loss']:.4f} nats/token"
                       + (f", perplexity {best['val_ppl']:.3f}" if "val_ppl" in best else "")
                       + (f", {best['val_bpb']:.4f} bits/byte" if "val_bpb" in best else "")
                       + ". model.safetensors holds the weights of this step."))
    return Section("Verdict", blocks + [("p", f"What to do: {verdict.advice}.")])


def history_section(evals: list[dict[str, Any]], best_step: int | None, limit: int = 40) -> Section:
    shown = evals
    if len(evals) > limit:  # evenly spaced, always with the best and the last
        idx = {round(i * (len(evals) - 1) / (limit - 1)) for i in range(limit)}
        idx |= {i for i, r in enumerate(evals) if int(r["step"]) == best_step}
        shown = [evals[i] for i in sorted(idx)]
    rows = [[f"{r['step']}{' (best)' if int(r['step']) == best_step else ''}", _fmt(r.get("train_loss")),
             _fmt(r.get("val_loss")), _fmt(r.get("val_ppl"), 3), _fmt(r.get("val_bpb")),
             _fmt(r.get("tokens_seen")), _fmt(r.get("lr"), 6)] for r in shown]
    header = ["step", "train loss", "val loss", "val ppl", "val bits/byte", "tokens seen", "lr"]
    note = [("p", f"{len(shown)} of {len(evals)} evals shown.")] if len(shown) < len(evals) else []
    return Section("Eval history", note + [("table", (header, rows))])


def file_evals_section(results: list[tuple[Path, dict[str, Any]]]) -> Section:
    rows = [[d.get("data", p.stem), _fmt(d.get("loss")), _fmt(d.get("perplexity"), 3), _fmt(d.get("bits_per_byte")),
             _fmt(d.get("tokens")), _fmt(d.get("stride"))] for p, d in results]
    header = ["data", "loss", "perplexity", "bits/byte", "tokens", "stride"]
    return Section("Evals on text files", [("table", (header, rows))])


def probes_section(results: list[tuple[Path, dict[str, Any]]]) -> Section:
    s = Section("Probes")
    for _, d in results:
        by_type = [[t, v["passed"], v["total"]] for t, v in d.get("by_type", {}).items()]
        checks = [[c["probe"], c["type"], "pass" if c["passed"] else "FAIL", c["detail"]] for c in d.get("checks", [])]
        s.blocks += [("p", f"Suite {d.get('suite', '?')}: {d.get('passed', 0)} of {d.get('total', 0)} checks passed "
                           f"({d.get('pass_rate', 0.0):.0%})."),
                     ("table", (["check", "passed", "total"], by_type)),
                     ("table", (["probe", "check", "result", "detail"], checks))]
    return s


def study_section(results: list[tuple[Path, dict[str, Any]]]) -> Section:
    from lmforge.evaluation.decoding_study import table_rows

    s = Section("Decoding study")
    for path, d in results:
        if d.get("settings"):
            s.blocks.append(("p", ", ".join(f"{k} {v}" for k, v in d["settings"].items())))
        try:
            s.blocks.append(("table", table_rows(d.get("strategies", []))))
        except (KeyError, TypeError, ValueError):
            s.blocks.append(("p", f"{path.name} is not a study result this version can read; rerun `lmforge study`"))
            continue
        s.blocks.append(("bullets", [f"{r['strategy']}: {r.get('example', '')!r}" for r in d.get("strategies", [])]))
        if path.with_suffix(".png").is_file():
            s.blocks.append(("image", (path.with_suffix(".png"), "decoding study")))
    return s


def samples_section(samples: list[tuple[int, str, str]], best_step: int | None) -> Section:
    if not samples:
        return Section("Samples", [("p", "samples.txt holds no samples.")])
    chosen = [x for x in samples if x[0] == best_step][-1:]
    if samples[-1] not in chosen:
        chosen.append(samples[-1])
    return Section("Samples", [("pre", (text, header + (" (best)" if step == best_step else "")))
                               for step, header, text in chosen])


# ---------------------------------------------------------------------- rendering


def _inline_html(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))


def markdown_table(header: list[str], rows: list[list[Any]], align: str = "---") -> str:
    """A Markdown table; `|` and newlines inside a cell are escaped so they cannot break it."""
    def line(cells: list[Any]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", "\\n") for c in cells) + " |"

    return "\n".join([line(header), "|" + f"{align}|" * len(header)] + [line(row) for row in rows])


def render_markdown(title: str, sections: list[Section], md_path: Path) -> str:
    out = [f"# {title}", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        for kind, payload in s.blocks:
            if kind == "p":
                out.append(payload)
            elif kind == "bullets":
                out += [f"- {item}" for item in payload]
            elif kind == "table":
                out.append(markdown_table(*payload))
            elif kind == "image":
                path, alt = payload
                out.append(f"![{alt}]({Path(os.path.relpath(path, md_path.parent)).as_posix()})")
            elif kind == "pre":
                text, caption = payload
                out += ([f"*{caption}*", ""] if caption else []) + ["```", text, "```"]
            out.append("")
    return "\n".join(out)


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } img { max-width: 100%; }
pre { background: #f7f7f7; padding: .8em; white-space: pre-wrap; border: 1px solid #e4e4e4; }
.caption { font-style: italic; color: #555; margin-bottom: .2em; }
"""


def render_html(title: str, sections: list[Section]) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{html.escape(title)}</title>",
           f"<style>{STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        out.append(f"<h2>{html.escape(s.title)}</h2>")
        for kind, payload in s.blocks:
            if kind == "p":
                out.append(f"<p>{_inline_html(payload)}</p>")
            elif kind == "bullets":
                out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in payload) + "</ul>")
            elif kind == "table":
                header, rows = payload
                head = [f"<tr>{''.join(f'<th>{html.escape(str(h))}</th>' for h in header)}</tr>"] if any(header) else []
                body = [f"<tr>{''.join(f'<td>{html.escape(str(c))}</td>' for c in row)}</tr>" for row in rows]
                out.append(f"<table>{''.join(head + body)}</table>")
            elif kind == "image":
                path, alt = payload
                data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
                out.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')
            elif kind == "pre":
                text, caption = payload
                if caption:
                    out.append(f'<div class="caption">{html.escape(caption)}</div>')
                out.append(f"<pre>{html.escape(text)}</pre>")
    out.append("</body></html>")
    return "\n".join(out)


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
    from lmforge.training.metrics import read_metrics

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LmforgeError(f"run directory '{run_dir}' does not exist; train one with `lmforge train --out {run_dir}`")
    metrics_path = run_dir / "metrics.jsonl"
    if not metrics_path.is_file():
        raise LmforgeError(f"'{run_dir}' has no metrics.jsonl, so there is nothing to report; "
                           f"train a run there with `lmforge train --out {run_dir}`")
    try:
        records = read_metrics(metrics_path)
    except ValueError:
        raise LmforgeError(f"'{metrics_path}' is not JSON lines (one object per line); restore it from the run") from None
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
    sections = [overview_section(run_dir, records, config), verdict_section(verdict, evals)]
    warnings = [f"step {r.get('step', '?')}: {r['message']}" for r in records
                if r.get("event") == "warning" and r.get("message")]
    if warnings:
        sections.append(Section("Warnings during training", [("bullets", warnings)]))
    sections.append(Section("Curves", [("image", (curves, "train/val loss, learning rate, gradient norm"))
                                       if curves else ("p", "no curves: metrics.jsonl holds no train records")]))
    if evals:
        sections.append(history_section(evals, verdict.best_step))
    for kind, section in (("eval", file_evals_section), ("probe", probes_section), ("study", study_section)):
        if saved[kind]:
            sections.append(section(saved[kind]))
    sections.append(samples_section(read_samples(run_dir / "samples.txt"), verdict.best_step))
    title = f"lmforge report: {run_dir.resolve().name}"
    html_path.write_text(render_html(title, sections), encoding="utf-8")
    md_path.write_text(render_markdown(title, sections, md_path), encoding="utf-8")
    return ReportResult(html_path, md_path, verdict)
