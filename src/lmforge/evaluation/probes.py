"""Prompt probes: small, named checks of what a model does with a prompt.

A suite is a JSONL file, one probe per line; the README describes its keys and
`probe_suite.ProbeLine` declares them. A line asks for one or two kinds of probe,
each a small type with its own `run`:

- `ContinuationProbe`: `contains` (any one of its alternatives), `not_contains` (none
  of them) and `regex` checks on the continuation of `prompt`, greedy unless the
  line gives a sampling setting;
- `ChoiceProbe`: multiple choice, ranked by the model's log-likelihood of each choice
  after the prompt, the two encoded as one text (`scoring.split_at_prompt` says why),
  summed over its tokens or, with `length_normalize`, per UTF-8 byte of the choice;
- `ConsistencyProbe`: paraphrased `prompts` that must rank the same choice first (and
  it must be `answer`, if given) or, without choices, whose continuations must agree
  on `agree_on` (the first word, lower-cased and without punctuation; the first line;
  or all of it).

Every check counts once in the summary under its type (`CHECK_TYPES`).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:
    from lmforge.evaluation.probe_suite import ProbeLine
    from lmforge.run import Run

CHECK_TYPES = ("contains", "not_contains", "regex", "choices", "consistency")


@dataclass
class CheckResult:
    probe: str
    type: str
    passed: bool
    detail: str  # what was seen, in a line a person can read
    outputs: dict[str, Any] = field(default_factory=dict)  # continuations, choice scores


def continuation(run: Run, prompt: str, line: ProbeLine) -> str:
    return run.generate(prompt, line.max_new_tokens, **line.sampling())[len(prompt):]


def choice_scores(run: Run, prompt: str, line: ProbeLine) -> list[float]:
    """The log-likelihood of each choice after `prompt`, encoded with it (per byte of the choice if asked)."""
    from lmforge.evaluation.scoring import continuation_logprobs, split_at_prompt

    block = run.model.context_size or run.config.model.block_size
    scores = []
    for choice in line.choices:
        context, scored = split_at_prompt(run.tokenizer, prompt, choice)
        total = float(continuation_logprobs(run.model, context, scored, block, run.device).sum())
        scores.append(total / len(choice.encode("utf-8")) if line.length_normalize else total)
    return scores


def _short(text: str, limit: int = 80) -> str:
    """A continuation quoted for a one-line detail, cut to `limit` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


@dataclass
class ContinuationProbe:
    """Checks on the text the model writes after one prompt."""

    line: ProbeLine

    @property
    def check_types(self) -> list[str]:
        return self.line.text_checks()

    def run(self, run: Run) -> list[CheckResult]:
        line = self.line
        text = continuation(run, line.prompt, line)
        flags, shown, results = re.IGNORECASE if line.ignore_case else 0, {"continuation": text}, []
        if line.contains:
            hits = [s for s in line.contains if re.search(re.escape(s), text, flags)]
            detail = f"found {hits[0]!r}" if hits else f"none of {line.contains} in {_short(text)}"
            results.append(CheckResult(line.id, "contains", bool(hits), detail, shown))
        if line.not_contains:
            hits = [s for s in line.not_contains if re.search(re.escape(s), text, flags)]
            detail = f"found {hits[0]!r} in {_short(text)}" if hits else f"none of {line.not_contains}"
            results.append(CheckResult(line.id, "not_contains", not hits, detail, shown))
        if line.regex is not None:
            match = re.search(line.regex, text, flags)
            detail = f"matched {match.group(0)!r}" if match else f"/{line.regex}/ not in {_short(text)}"
            results.append(CheckResult(line.id, "regex", match is not None, detail, shown))
        return results


@dataclass
class ChoiceProbe:
    """Multiple choice after one prompt: the answer must have the highest log-likelihood."""

    line: ProbeLine
    check_types = ["choices"]

    def run(self, run: Run) -> list[CheckResult]:
        line = self.line
        scores = choice_scores(run, line.prompt, line)
        best = int(np.argmax(scores))
        detail = f"ranked {line.choices[best]!r} first" + (
            "" if best == line.answer else f", not {line.choices[line.answer]!r}")
        return [CheckResult(line.id, "choices", best == line.answer, detail,
                            {"scores": dict(zip(line.choices, scores)), "chosen": line.choices[best]})]


def agreement_key(text: str, agree_on: str) -> str:
    """The part of a continuation that paraphrases must agree on."""
    if agree_on == "all":
        return text.strip()
    if agree_on == "first_line":
        return (text.strip().splitlines() or [""])[0].strip()
    words = text.split()
    return re.sub(r"^\W+|\W+$", "", words[0]).lower() if words else ""


@dataclass
class ConsistencyProbe:
    """Paraphrased prompts that must agree: on the choice ranked first, or on their continuations."""

    line: ProbeLine
    check_types = ["consistency"]

    def run(self, run: Run) -> list[CheckResult]:
        line = self.line
        if line.choices:
            picks = [line.choices[int(np.argmax(choice_scores(run, p, line)))] for p in line.prompts]
            agree = len(set(picks)) == 1
            right = line.answer is None or picks[0] == line.choices[line.answer]
            if agree and right:
                detail = f"all {len(picks)} prompts ranked {picks[0]!r} first"
            elif agree:
                detail = f"all prompts ranked {picks[0]!r} first, not the answer {line.choices[line.answer]!r}"
            else:
                detail = "prompts disagree: " + ", ".join(f"{p!r}→{c!r}" for p, c in zip(line.prompts, picks))
            return [CheckResult(line.id, "consistency", agree and right, detail, {"picks": picks})]
        texts = [continuation(run, p, line) for p in line.prompts]
        keys = [agreement_key(t, line.agree_on) for t in texts]
        agree = len(set(keys)) == 1 and keys[0] != ""
        detail = (f"all {len(keys)} prompts agree on {keys[0]!r}" if agree
                  else f"{line.agree_on} differs: " + ", ".join(repr(k) for k in keys))
        return [CheckResult(line.id, "consistency", agree, detail, {"continuations": texts, "keys": keys})]


Probe = Union[ContinuationProbe, ChoiceProbe, ConsistencyProbe]


@dataclass
class ProbeReport:
    suite: str
    checks: list[CheckResult]

    @property
    def passed(self) -> int:
        return sum(c.passed for c in self.checks)

    @property
    def pass_rate(self) -> float:
        return self.passed / len(self.checks) if self.checks else 0.0

    def by_type(self) -> dict[str, dict[str, float]]:
        out = {}
        for t in CHECK_TYPES:
            passed = [c.passed for c in self.checks if c.type == t]
            if passed:
                out[t] = {"passed": sum(passed), "total": len(passed), "pass_rate": sum(passed) / len(passed)}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "passed": self.passed, "total": len(self.checks), "pass_rate": self.pass_rate,
                "by_type": self.by_type(), "checks": [asdict(c) for c in self.checks]}


def run_suite(run: Run, probes: list[Probe], suite_name: str = "suite") -> ProbeReport:
    return ProbeReport(suite_name, [check for probe in probes for check in probe.run(run)])


def format_report(report: ProbeReport, verbose: bool = False) -> str:
    """A summary by check type, then one line per failed check (every check with `verbose`)."""
    lines = [f"{'check':<14}{'passed':>8}{'total':>7}{'rate':>8}"]
    for t, s in report.by_type().items():
        lines.append(f"{t:<14}{s['passed']:>8}{s['total']:>7}{s['pass_rate']:>8.0%}")
    lines.append(f"{'all':<14}{report.passed:>8}{len(report.checks):>7}{report.pass_rate:>8.0%}")
    shown = [c for c in report.checks if verbose or not c.passed]
    lines += [""] if shown else []
    lines += [f"{'PASS' if c.passed else 'FAIL'} {c.probe} [{c.type}]: {c.detail}" for c in shown]
    return "\n".join(lines)
