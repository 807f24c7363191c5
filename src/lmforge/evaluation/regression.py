"""Regression checks: is a run (a run directory or a saved eval JSON) worse than a baseline beyond a tolerance?

Numbers compare only on the same text: with `data`, every run directory is evaluated on that file; a run directory set
against an eval JSON is evaluated on the file (and with the stride) the JSON names; two run directories compare their
best evals on their val splits. Loss per token compares only across runs with the same tokenizer.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError

METRICS = ("loss", "bits_per_byte")  # lower is better


@dataclass
class Side:
    label: str
    metrics: dict[str, float]  # of METRICS
    source: str  # where the numbers came from, e.g. "best eval in metrics.jsonl (step 400)" or "eval of data.txt"
    data: str | None = None  # the text measured, when known
    tokenizer: str | None = None
    stride: int | None = None  # the sliding-window stride of an eval on `data`


@dataclass
class MetricCheck:
    metric: str
    baseline: float
    candidate: float
    delta: float
    allowed: float
    regressed: bool


@dataclass
class RegressionResult:
    baseline: Side
    candidate: Side
    checks: list[MetricCheck]
    notes: list[str]

    @property
    def regressed(self) -> bool:
        return any(c.regressed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"regressed": self.regressed, **asdict(self)}


def side_from_json(path: Path, label: str) -> Side:
    hint = f"save a baseline with `lmforge eval RUN --data PATH --json > {path.name}`"
    if not path.is_file():
        raise LmforgeError(f"'{path}' is neither a run directory nor an eval JSON file; pass a run directory or "
                           "the output of `lmforge eval RUN --data PATH --json`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise LmforgeError(f"'{path}' is not JSON; {hint}") from None
    metrics = {k: float(data[k]) for k in METRICS if isinstance(data, dict) and isinstance(data.get(k), (int, float))}
    if not metrics:
        raise LmforgeError(f"'{path}' holds no 'loss' or 'bits_per_byte'; {hint}")
    return Side(label, metrics, f"eval JSON {path}", data.get("data"), data.get("tokenizer"), data.get("stride"))


def side_from_metrics(run_dir: Path, label: str) -> Side:
    import yaml

    from lmforge.evaluation.verdict import eval_records
    from lmforge.training.logs import read_metrics

    evals = eval_records(read_metrics(run_dir / "metrics.jsonl"))
    if not evals:
        raise LmforgeError(f"'{run_dir}' has no eval records in metrics.jsonl; compare on a file instead with --data PATH")
    best = min(evals, key=lambda r: r["val_loss"])
    metrics = {"loss": float(best["val_loss"])}
    if "val_bpb" in best:
        metrics["bits_per_byte"] = float(best["val_bpb"])
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
        data = (config.get("data") or {}).get("path") or "the built-in corpus"
        tokenizer = json.loads((run_dir / "tokenizer.json").read_text(encoding="utf-8")).get("type")
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        data, tokenizer = "unknown data", None
    return Side(label, metrics, f"best eval in metrics.jsonl (step {best['step']})", f"val split of {data}", tokenizer)


def side_from_eval(run_dir: Path, label: str, data: str, stride: int | None, device: str) -> Side:
    import lmforge
    from lmforge.evaluation.perplexity import evaluate_run

    result = evaluate_run(lmforge.load(run_dir, device=device), data, stride=stride)
    return Side(label, {k: result[k] for k in METRICS}, f"eval of {data} (stride {result['stride']})", data,
                result.get("tokenizer"), result["stride"])


def compare(baseline: Side, candidate: Side, tolerance: float, abs_tolerance: float) -> RegressionResult:
    if not (0 <= tolerance < math.inf and 0 <= abs_tolerance < math.inf):  # nan too: it made every check pass
        raise LmforgeError(f"--tolerance and --abs-tolerance must be finite numbers, 0 or more (got {tolerance}, "
                           f"{abs_tolerance})")
    checks, notes = [], []
    for metric in METRICS:
        if metric not in baseline.metrics or metric not in candidate.metrics:
            continue
        if metric == "loss" and baseline.tokenizer and candidate.tokenizer and baseline.tokenizer != candidate.tokenizer:
            notes.append(f"loss per token not compared: the tokenizers differ ({baseline.tokenizer} vs {candidate.tokenizer})")
            continue
        b, c = baseline.metrics[metric], candidate.metrics[metric]
        allowed = max(tolerance * abs(b), abs_tolerance)
        checks.append(MetricCheck(metric, b, c, c - b, allowed, c - b > allowed))
    if not checks:
        raise LmforgeError("the two sides share no metric to compare (loss or bits_per_byte); "
                           "evaluate both on the same file with --data PATH")
    if baseline.data and candidate.data and baseline.data != candidate.data:
        notes.append(f"the two sides measure different text ({baseline.data} vs {candidate.data}); "
                     "pass --data PATH to evaluate both on one file")
    return RegressionResult(baseline, candidate, checks, notes)


def regress(candidate: str | Path, baseline: str | Path, *, tolerance: float = 0.01, abs_tolerance: float = 0.0,
            data: str | None = None, stride: int | None = None, device: str = "auto") -> RegressionResult:
    """Compare `candidate` with `baseline` (each a run directory or an eval JSON); see the module docstring."""
    paths = {"baseline": Path(baseline), "candidate": Path(candidate)}
    sides = {label: None if path.is_dir() else side_from_json(path, label) for label, path in paths.items()}
    saved = [side for side in sides.values() if side is not None]
    if data is None and len(saved) == 1:  # measure the run on the text the eval JSON measured, with its stride
        data, stride = saved[0].data, saved[0].stride if stride is None else stride
        if data is None or not Path(data).is_file():
            raise LmforgeError(f"the {saved[0].label} '{paths[saved[0].label]}' does not name a readable data file; "
                               f"pass --data PATH (the file the {saved[0].label} was evaluated on)")
    for label, path in paths.items():
        if sides[label] is None:
            sides[label] = side_from_eval(path, label, data, stride, device) if data else side_from_metrics(path, label)
    return compare(sides["baseline"], sides["candidate"], tolerance, abs_tolerance)


def format_result(result: RegressionResult) -> str:
    lines = [f"baseline:  {result.baseline.source}", f"candidate: {result.candidate.source}", "",
             f"{'metric':<15}{'baseline':>10}{'candidate':>11}{'change':>10}{'allowed':>10}  verdict"]
    for c in result.checks:
        lines.append(f"{c.metric:<15}{c.baseline:>10.4f}{c.candidate:>11.4f}{c.delta:>+10.4f}{c.allowed:>10.4f}  "
                     f"{'REGRESSED' if c.regressed else 'ok'}")
    lines += [f"note: {n}" for n in result.notes]
    lines.append("")
    lines.append("regression: " + ", ".join(c.metric for c in result.checks if c.regressed) if result.regressed
                 else "no regression")
    return "\n".join(lines)
