"""Under- or overfitting? A verdict from the eval records of a run, with its evidence (the rules:
docs/05-training.md). `tolerance` keeps a flat curve's wiggles from reading as a trend; val loss is measured on the
same text at every eval (the whole val split, or a fixed sample of it: `train.eval_tokens`), so it is not noisy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

TOLERANCE = 0.01

ADVICE = {
    "overfitting": "model.safetensors already holds the best step's weights; to do better, stop earlier, "
                   "train on more text, add dropout (--model.dropout 0.1) or weight decay, or use a smaller model",
    "diverging": "lower the learning rate (--train.lr) or the gradient clip (--train.grad_clip)",
    "underfitting": "train longer (--train.max_steps) or use a bigger model (--model.n_layer, --model.n_embd)",
    "good fit": "more steps will not help much at this size; a bigger model or more data will",
    "inconclusive": "evaluate more often (--train.eval_interval) to see a trend",
}


@dataclass
class Verdict:
    label: str  # overfitting | diverging | underfitting | good fit | inconclusive
    best_step: int | None
    best_val_loss: float | None
    evidence: list[str] = field(default_factory=list)
    advice: str = ""


def eval_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Eval records with a finite val loss, one per step (the latest, after a resume), in step order."""
    by_step: dict[int, dict[str, Any]] = {}
    for r in records:
        if r.get("event") == "eval" and isinstance(r.get("val_loss"), (int, float)) and math.isfinite(r["val_loss"]):
            by_step[int(r["step"])] = r
    return [by_step[s] for s in sorted(by_step)]


def _pct(delta: float, base: float) -> str:
    return f"{delta / abs(base):+.1%}" if base else "n/a"


def _from_train_records(verdict: Verdict, only: dict[str, Any], records: list[dict[str, Any]],
                        tolerance: float) -> Verdict:
    """The verdict of a run with one eval: the trend of the batch train loss, last 10% of steps against 65-75%."""
    verdict.evidence = [f"only one eval (step {only['step']}, val loss {only['val_loss']:.4f}), so no val trend"]
    train = [r for r in records if r.get("event") == "train" and isinstance(r.get("loss"), (int, float))
             and math.isfinite(r["loss"])]
    end = max((r["step"] for r in train), default=0)
    late = [r["loss"] for r in train if r["step"] > 0.9 * end]
    ref = [r["loss"] for r in train if 0.65 * end < r["step"] <= 0.75 * end]
    if late and ref:
        before, after = sum(ref) / len(ref), sum(late) / len(late)
        falling = before - after > tolerance * after
        verdict.evidence.append(f"batch train loss {'was still falling' if falling else 'had flattened'}: mean "
                                f"{before:.4f} over steps {0.65 * end:.0f}-{0.75 * end:.0f} → {after:.4f} over the "
                                f"last 10% of steps ({after - before:+.4f}, {_pct(after - before, before)})")
        if isinstance(only.get("train_loss"), (int, float)):
            verdict.evidence.append(f"at step {only['step']} train loss {only['train_loss']:.4f}, val loss "
                                    f"{only['val_loss']:.4f}: a gap of {only['val_loss'] - only['train_loss']:+.4f}")
        if falling:
            verdict.label = "underfitting"
    verdict.advice = ADVICE[verdict.label] + ("" if verdict.label == "inconclusive" else
                                              "; evaluate more often (--train.eval_interval) to see the val trend")
    return verdict


def diagnose(records: list[dict[str, Any]], tolerance: float = TOLERANCE) -> Verdict:
    evals = eval_records(records)
    if not evals:
        return Verdict("inconclusive", None, None, ["metrics.jsonl holds no eval records"], ADVICE["inconclusive"])
    best = min(evals, key=lambda r: r["val_loss"])
    last = evals[-1]
    verdict = Verdict("inconclusive", int(best["step"]), float(best["val_loss"]))
    if len(evals) < 2:
        return _from_train_records(verdict, last, records, 2 * tolerance)

    def gap(r: dict[str, Any]) -> float | None:
        return r["val_loss"] - r["train_loss"] if isinstance(r.get("train_loss"), (int, float)) else None

    gap_best, gap_last = gap(best), gap(last)
    rise = last["val_loss"] - best["val_loss"]
    evidence = []
    if best is not last and rise > tolerance * best["val_loss"]:
        evidence.append(f"val loss was lowest, {best['val_loss']:.4f}, at step {best['step']} and rose to "
                        f"{last['val_loss']:.4f} by step {last['step']} ({rise:+.4f}, {_pct(rise, best['val_loss'])})")
        widened = gap_best is not None and gap_last is not None and gap_last > gap_best
        if gap_best is not None and gap_last is not None:
            evidence.append(f"train loss went from {best['train_loss']:.4f} to {last['train_loss']:.4f}; the train/val "
                            f"gap {'widened' if widened else 'did not widen'} from {gap_best:.4f} to {gap_last:.4f}")
        label = "overfitting" if widened or gap_last is None else "diverging"
    else:
        # the trend over the last quarter of the run: from the eval nearest 75% of the last step
        target = last["step"] * 0.75
        ref = min(evals[:-1], key=lambda r: abs(r["step"] - target))
        drop = ref["val_loss"] - last["val_loss"]
        if drop > tolerance * last["val_loss"]:
            label = "underfitting"
            evidence.append(f"val loss was still falling at the end: {ref['val_loss']:.4f} at step {ref['step']} → "
                            f"{last['val_loss']:.4f} at step {last['step']} ({-drop:+.4f}, {_pct(-drop, ref['val_loss'])})")
        else:
            label = "good fit"
            evidence.append(f"val loss has flattened: {ref['val_loss']:.4f} at step {ref['step']} → "
                            f"{last['val_loss']:.4f} at step {last['step']} (within {tolerance:.0%}), "
                            f"best {best['val_loss']:.4f} at step {best['step']}")
        if gap_last is not None:
            size = "small" if abs(gap_last) <= 0.05 * last["val_loss"] else "large"
            evidence.append(f"the train/val gap at the end is {size}: {gap_last:+.4f} nats/token "
                            f"(train {last['train_loss']:.4f}, val {last['val_loss']:.4f})")
    verdict.label, verdict.evidence, verdict.advice = label, evidence, ADVICE[label]
    return verdict
