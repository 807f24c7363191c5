"""Prompt probes: small, named checks of what a model does with a prompt.

A suite is a JSONL file, one probe per line (blank lines and lines starting
with `#` are skipped). A line is one of three kinds:

1. A prompt whose continuation is checked (greedy by default; give any of
   `temperature`, `top_k`, `top_p`, or `"greedy": false`, to sample, with `seed`):

       {"id": "senate", "prompt": "Fellow-Citizens of the", "contains": "Senate"}
       {"id": "year", "prompt": "In the year 18", "regex": "^\\d\\d"}
       {"id": "no-loop", "prompt": "The", "not_contains": ["the the", "and and"], "temperature": 0.8}

   `contains`: a string, or a list of accepted alternatives (any one passes);
   `not_contains`: a string or a list, none may appear; `regex`: a Python
   pattern searched for in the continuation. `ignore_case` applies to all
   three; `max_new_tokens` (default 40) sets the continuation's length.

2. Multiple choice, ranked by the model's log-likelihood of each choice after
   the prompt (summed over its tokens; `"length_normalize": true` divides by
   the choice's UTF-8 bytes, for choices of different lengths), encoded with
   the prompt as one text (`scoring.split_at_prompt` says where scoring starts):

       {"id": "us", "prompt": "the United", "choices": [" States", " Kingdom"], "answer": " States"}

   `answer` is the right choice, as its text or its index.

3. A consistency group: paraphrased prompts that must agree. With `choices`,
   they must rank the same choice first (and it must be `answer`, if given);
   without, their greedy continuations must agree on `agree_on`:
   "first_word" (default: the first word, lower-cased, without punctuation),
   "first_line", or "all".

       {"id": "fellow", "prompts": ["Fellow-Citizens of the", "Fellow Citizens of the"]}

A line's schema is `probe_suite.ProbeLine`, which turns it into its probes, one
small type per kind (`ContinuationProbe`, `ChoiceProbe`, `ConsistencyProbe`), each
with its own `run`. Every check counts once in the summary under its type
(`contains`, `not_contains`, `regex`, `choices`, `consistency`); a line may hold a
continuation probe and a choice probe, and each of its checks counts.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from lmforge.run import Run

CHECK_TYPES = ("contains", "not_contains", "regex", "choices", "consistency")


# ---------------------------------------------------------------------- the kinds of probe


@dataclass
class CheckResult:
    probe: str
    type: str
    passed: bool
    detail: str  # what was seen, in a line a person can read
    outputs: dict[str, Any] = field(default_factory=dict)  # continuations, choice scores


def choice_scores(run: Run, prompt: str, choices: list[str], length_normalize: bool) -> list[float]:
    """The log-likelihood of each choice after `prompt`, encoded with it (per byte of the choice if asked)."""
    from lmforge.evaluation.scoring import continuation_logprobs, split_at_prompt

    block = run.model.context_size or run.config.model.block_size
    scores = []
    for choice in choices:
        context, scored = split_at_prompt(run.tokenizer, prompt, choice)
        total = float(continuation_logprobs(run.model, context, scored, block, run.device).sum())
        scores.append(total / len(choice.encode("utf-8")) if length_normalize else total)
    return scores


def _best(scores: list[float]) -> int:
    return max(range(len(scores)), key=scores.__getitem__)


def _short(text: str, limit: int = 80) -> str:
    """A continuation quoted for a one-line detail, cut to `limit` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


@dataclass
class ContinuationProbe:
    """Checks on the text the model writes after one prompt."""

    id: str
    prompt: str
    contains: list[str] = field(default_factory=list)  # alternatives: any one passes
    not_contains: list[str] = field(default_factory=list)
    regex: str | None = None
    ignore_case: bool = False
    max_new_tokens: int = 40
    sampling: dict[str, Any] = field(default_factory=dict)

    @property
    def check_types(self) -> list[str]:
        return [t for t in ("contains", "not_contains") if getattr(self, t)] + ["regex"] * (self.regex is not None)

    def run(self, run: Run) -> list[CheckResult]:
        text = run.generate(self.prompt, self.max_new_tokens, **self.sampling)[len(self.prompt):]
        seen = text.lower() if self.ignore_case else text
        found = [s for s in self.contains + self.not_contains if (s.lower() if self.ignore_case else s) in seen]
        shown, results = {"continuation": text}, []
        if self.contains:
            hits = [s for s in self.contains if s in found]
            detail = f"found {hits[0]!r}" if hits else f"none of {self.contains} in {_short(text)}"
            results.append(CheckResult(self.id, "contains", bool(hits), detail, shown))
        if self.not_contains:
            hits = [s for s in self.not_contains if s in found]
            detail = f"found {hits[0]!r} in {_short(text)}" if hits else f"none of {self.not_contains}"
            results.append(CheckResult(self.id, "not_contains", not hits, detail, shown))
        if self.regex is not None:
            match = re.search(self.regex, text, re.IGNORECASE if self.ignore_case else 0)
            detail = f"matched {match.group(0)!r}" if match else f"/{self.regex}/ not in {_short(text)}"
            results.append(CheckResult(self.id, "regex", match is not None, detail, shown))
        return results


@dataclass
class ChoiceProbe:
    """Multiple choice after one prompt: the answer must have the highest log-likelihood."""

    id: str
    prompt: str
    choices: list[str]
    answer: int
    length_normalize: bool = False
    check_types = ["choices"]

    def run(self, run: Run) -> list[CheckResult]:
        scores = choice_scores(run, self.prompt, self.choices, self.length_normalize)
        best = _best(scores)
        detail = f"ranked {self.choices[best]!r} first" + (
            "" if best == self.answer else f", not {self.choices[self.answer]!r}")
        return [CheckResult(self.id, "choices", best == self.answer, detail,
                            {"scores": dict(zip(self.choices, scores)), "chosen": self.choices[best]})]


def agreement_key(text: str, agree_on: str) -> str:
    """The part of a continuation that paraphrases must agree on."""
    if agree_on == "all":
        return text.strip()
    if agree_on == "first_line":
        stripped = text.strip()
        return stripped.splitlines()[0].strip() if stripped else ""
    words = text.split()
    return re.sub(r"^\W+|\W+$", "", words[0]).lower() if words else ""


@dataclass
class ConsistencyProbe:
    """Paraphrased prompts that must agree: on the choice ranked first, or on their continuations."""

    id: str
    prompts: list[str]
    choices: list[str] = field(default_factory=list)
    answer: int | None = None
    length_normalize: bool = False
    agree_on: str = "first_word"
    max_new_tokens: int = 40
    sampling: dict[str, Any] = field(default_factory=dict)
    check_types = ["consistency"]

    def run(self, run: Run) -> list[CheckResult]:
        return [self._choices(run) if self.choices else self._continuations(run)]

    def _choices(self, run: Run) -> CheckResult:
        picks = [self.choices[_best(choice_scores(run, p, self.choices, self.length_normalize))] for p in self.prompts]
        agree = len(set(picks)) == 1
        right = self.answer is None or picks[0] == self.choices[self.answer]
        if agree and right:
            detail = f"all {len(picks)} prompts ranked {picks[0]!r} first"
        elif agree:
            detail = f"all prompts ranked {picks[0]!r} first, not the answer {self.choices[self.answer]!r}"
        else:
            detail = "prompts disagree: " + ", ".join(f"{p!r}→{c!r}" for p, c in zip(self.prompts, picks))
        return CheckResult(self.id, "consistency", agree and right, detail, {"picks": picks})

    def _continuations(self, run: Run) -> CheckResult:
        texts = [run.generate(p, self.max_new_tokens, **self.sampling)[len(p):] for p in self.prompts]
        keys = [agreement_key(t, self.agree_on) for t in texts]
        agree = len(set(keys)) == 1 and keys[0] != ""
        detail = (f"all {len(keys)} prompts agree on {keys[0]!r}" if agree
                  else f"{self.agree_on} differs: " + ", ".join(repr(k) for k in keys))
        return CheckResult(self.id, "consistency", agree, detail, {"continuations": texts, "keys": keys})


Probe = Union[ContinuationProbe, ChoiceProbe, ConsistencyProbe]


# ---------------------------------------------------------------------- running a suite




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
    if shown:
        lines.append("")
    for c in shown:
        lines.append(f"{'PASS' if c.passed else 'FAIL'} {c.probe} [{c.type}]: {c.detail}")
    return "\n".join(lines)
