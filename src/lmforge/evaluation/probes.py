"""Prompt probes: small, named checks of what a model does with a prompt, from a JSONL suite (docs/07-evaluation.md).

A line is one of three kinds, told apart by its keys; each kind is a pydantic model that declares its keys and rules,
and pydantic's first complaint about a line becomes one error that names the file, the line and the key.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, ClassVar, Literal, Union

import numpy as np
from pydantic import (AfterValidator, BaseModel, ConfigDict, Discriminator, Field, StrictBool, StrictInt, Tag,
                      TypeAdapter, ValidationError, model_validator)

from lmforge.errors import LmforgeError, did_you_mean
from lmforge.paths import utf8_lines

if TYPE_CHECKING:
    from lmforge.run import Run

CHECK_TYPES = ("contains", "not_contains", "regex", "choices", "consistency")


@dataclass
class CheckResult:
    probe: str
    type: str
    passed: bool
    detail: str  # what was seen, in a line a person can read
    outputs: dict[str, Any] = field(default_factory=dict)  # continuations, choice scores


def log_likelihood(run: Run, prompt: str, choice: str, per_byte: bool = False) -> float:
    """log p(choice | prompt), the two encoded as one text (`scoring.split_at_prompt` says why); per UTF-8 byte
    of the choice with `per_byte`, so that a long choice is not punished for its length."""
    from lmforge.evaluation.scoring import continuation_logprobs, split_at_prompt

    context, scored = split_at_prompt(run.tokenizer, prompt, choice)
    block = run.model.context_size or run.config.model.block_size
    total = float(continuation_logprobs(run.model, context, scored, block, run.device).sum())
    return total / len(choice.encode("utf-8")) if per_byte else total


def ranked_first(run: Run, prompt: str, choices: list[str], per_byte: bool) -> tuple[str, list[float]]:
    """The choice the model finds likeliest after `prompt`, and each choice's `log_likelihood`."""
    scores = [log_likelihood(run, prompt, c, per_byte) for c in choices]
    return choices[int(np.argmax(scores))], scores


# ---------------------------------------------------------------------- the kinds of probe


def _fail(message: str):
    raise ValueError(message)


def _strings(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) and s for s in items):
        _fail("must be a non-empty string or a list of them")
    return items


def _pattern(value: str) -> str:
    try:
        return re.compile(value).pattern
    except re.error as exc:
        raise ValueError(f"{value!r} is not a valid regular expression ({exc})") from None


def _right(choices: list[str], answer: int | str) -> str:
    """The right choice's text, from `answer` given as its text or its index."""
    if isinstance(answer, int) and not 0 <= answer < len(choices):
        _fail(f"'answer' index {answer} is out of range for {len(choices)} choices")
    if isinstance(answer, str) and answer not in choices:
        _fail(f"'answer' {answer!r} is not one of the choices {choices}")
    return choices[answer] if isinstance(answer, int) else answer


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


Strings = Annotated[Any, AfterValidator(_strings)]  # one string, or a list of alternatives
Prompt = Annotated[Any, AfterValidator(lambda v: v if isinstance(v, str) and v else _fail(
    "is one non-empty string; use 'prompts' for a group of paraphrases"))]
Choices = Annotated[Strings, AfterValidator(lambda v: v if len(v) > 1 else _fail("needs at least two choices"))]


class _Probe(BaseModel):
    """The keys every kind takes: its name, a note for the reader of the suite, and how to write a continuation."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str  # "lineN" when the line leaves it out
    note: str | None = None
    max_new_tokens: Annotated[StrictInt, Field(ge=1)] = 40
    greedy: StrictBool | None = None  # None: greedy unless a sampling setting is given
    temperature: Annotated[float, Field(gt=0)] = 1.0
    top_k: Annotated[StrictInt, Field(ge=0)] = 0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    seed: StrictInt = 0

    def continuation(self, run: Run, prompt: str) -> str:
        greedy = not self.model_fields_set & {"temperature", "top_k", "top_p"} if self.greedy is None else self.greedy
        return run.generate(prompt, self.max_new_tokens, greedy=greedy, temperature=self.temperature,
                            top_k=self.top_k, top_p=self.top_p, seed=self.seed)[len(prompt):]

    def check(self, type: str, passed: bool, detail: str, **outputs: Any) -> CheckResult:
        return CheckResult(self.id, type, passed, detail, outputs)


class _Ranks(_Probe):
    """The keys of a probe that ranks `choices` by their `log_likelihood`."""

    choices: Choices = []
    answer: Union[StrictInt, str] | None = None  # the right choice, as its text or its index
    length_normalize: StrictBool = False

    @model_validator(mode="after")
    def _answer_is_a_choice(self) -> _Ranks:
        if self.answer is not None:
            _right(self.choices, self.answer) if self.choices else _fail("'answer' needs 'choices' to pick from")
        return self

    @property
    def right(self) -> str | None:
        return None if self.answer is None else _right(self.choices, self.answer)


class ContinuationProbe(_Probe):
    """Checks on the text the model writes after one prompt."""

    prompt: Prompt
    contains: Strings = []  # any one of these
    not_contains: Strings = []  # none of these
    regex: Annotated[str, AfterValidator(_pattern)] | None = None
    ignore_case: StrictBool = False

    @property
    def check_types(self) -> list[str]:
        return [k for k in ("contains", "not_contains") if getattr(self, k)] + ["regex"] * (self.regex is not None)

    @model_validator(mode="after")
    def _checks_something(self) -> ContinuationProbe:
        return self if self.check_types else _fail(
            "the probe checks nothing; add 'contains', 'not_contains', 'regex' or 'choices'")

    def run(self, run: Run) -> list[CheckResult]:
        """Greedy unless the line gives a sampling setting; `contains` passes on any one of its alternatives."""
        text, flags = self.continuation(run, self.prompt), re.IGNORECASE if self.ignore_case else 0
        yes, no = ([s for s in alternatives if re.search(re.escape(s), text, flags)]
                   for alternatives in (self.contains, self.not_contains))
        match, seen = re.search(self.regex or "", text, flags), f" in {_short(text)}"
        outcomes = {"contains": (bool(yes), f"found {yes[0]!r}" if yes else f"none of {self.contains}{seen}"),
                    "not_contains": (not no, f"found {no[0]!r}{seen}" if no else f"none of {self.not_contains}"),
                    "regex": (bool(match), f"matched {match.group(0)!r}" if match else f"/{self.regex}/ not{seen}")}
        return [self.check(t, *outcomes[t], continuation=text) for t in self.check_types]


class ChoiceProbe(_Ranks):
    """Multiple choice after one prompt: the answer must have the highest log-likelihood."""

    check_types: ClassVar[list[str]] = ["choices"]
    prompt: Prompt
    choices: Choices
    answer: Union[StrictInt, str]

    def run(self, run: Run) -> list[CheckResult]:
        (best, scores), right = ranked_first(run, self.prompt, self.choices, self.length_normalize), self.right
        detail = f"ranked {best!r} first" + ("" if best == right else f", not {right!r}")
        return [self.check("choices", best == right, detail, scores=dict(zip(self.choices, scores)), chosen=best)]


def agreement_key(text: str, agree_on: str) -> str:
    """The part of a continuation that paraphrases must agree on."""
    if agree_on == "all":
        return text.strip()
    if agree_on == "first_line":
        return (text.strip().splitlines() or [""])[0].strip()
    words = text.split()
    return re.sub(r"^\W+|\W+$", "", words[0]).lower() if words else ""


class ConsistencyProbe(_Ranks):
    """Paraphrased prompts that must agree: on the choice ranked first, or on their continuations."""

    check_types: ClassVar[list[str]] = ["consistency"]
    prompts: Annotated[Strings, AfterValidator(lambda v: v if len(v) > 1 else _fail("needs at least two paraphrases"))]
    agree_on: Literal["first_word", "first_line", "all"] = "first_word"

    def run(self, run: Run) -> list[CheckResult]:
        if not self.choices:
            texts = [self.continuation(run, p) for p in self.prompts]
            keys = [agreement_key(t, self.agree_on) for t in texts]
            agree = len(set(keys)) == 1 and keys[0] != ""
            detail = (f"all {len(keys)} prompts agree on {keys[0]!r}" if agree
                      else f"{self.agree_on} differs: " + ", ".join(repr(k) for k in keys))
            return [self.check("consistency", agree, detail, continuations=texts, keys=keys)]
        picks = [ranked_first(run, p, self.choices, self.length_normalize)[0] for p in self.prompts]
        right = self.right
        agree, is_right = len(set(picks)) == 1, right in (None, picks[0])
        wrong = "" if is_right else f", not the answer {right!r}"
        detail = (f"all {len(picks)} prompts ranked {picks[0]!r} first{wrong}" if agree else
                  "prompts disagree: " + ", ".join(f"{p!r}→{c!r}" for p, c in zip(self.prompts, picks)))
        return [self.check("consistency", agree and is_right, detail, picks=picks)]


def _kind(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "continuation"  # refused as "not an object"
    if ("prompt" in data) == ("prompts" in data):
        return None
    return "consistency" if "prompts" in data else "multiple-choice" if "choices" in data else "continuation"


KINDS = {"continuation": ContinuationProbe, "multiple-choice": ChoiceProbe, "consistency": ConsistencyProbe}
Probe = Union[ContinuationProbe, ChoiceProbe, ConsistencyProbe]
PROBE = TypeAdapter(Annotated[Union[tuple(Annotated[kind, Tag(tag)] for tag, kind in KINDS.items())], Discriminator(
    _kind, custom_error_type="probe_kind",
    custom_error_message="give either 'prompt' (one prompt) or 'prompts' (a consistency group), not both or neither")])
KEYS = sorted({key for cls in KINDS.values() for key in cls.model_fields})


def _one_line(exc: ValidationError, where: str) -> LmforgeError:
    """pydantic's first complaint as one line that names the key and the rule."""
    error = exc.errors()[0]
    kind, key = (list(map(str, error["loc"][:2])) + ["", ""])[:2]  # loc: (kind, key, union member)
    message = error["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    if error["type"] == "extra_forbidden" and key in KEYS:
        takes = " or ".join(name for name, cls in KINDS.items() if key in cls.model_fields)
        return LmforgeError(f"{where}: '{key}' does not go in a {kind} probe (it is for a {takes} probe); "
                            "write that check as a probe of its own")
    if error["type"] == "extra_forbidden":
        return LmforgeError(f"{where}: unknown probe key '{key}'{did_you_mean(key, KEYS)}; keys are {', '.join(KEYS)}")
    if error["type"] == "missing":
        return LmforgeError(f"{where}: a {kind} probe needs '{key}'")
    if error["type"] == "model_type":
        return LmforgeError(f"{where}: a probe is a JSON object like {{\"prompt\": \"...\", \"contains\": \"...\"}}")
    if error["type"].startswith(("greater_than", "less_than")):
        message += f", not {error['input']}"
    return LmforgeError(f"{where}: '{key}' {message}" if key else f"{where}: {message}")


def parse_probe(data: Any, where: str, default_id: str) -> Probe:
    """The probe one line's JSON value declares; `where` (file:line) prefixes every error."""
    try:
        return PROBE.validate_python({**data, "id": data.get("id") or default_id} if isinstance(data, dict) else data)
    except ValidationError as exc:
        raise _one_line(exc, where) from None


# ---------------------------------------------------------------------- reading a suite


def shipped_suites() -> dict[str, Path]:
    """The example suites that come with lmforge (src/lmforge/suites/NAME.jsonl), by name."""
    from importlib import resources

    folder = resources.files("lmforge") / "suites"
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".jsonl")}


def resolve_suite(spec: str | Path, flag: str = "--suite", what: str = "a JSONL file of probes") -> Path:
    """A file's path, or the path of a shipped suite named `spec` (e.g. 'sotu')."""
    path, shipped = Path(spec), shipped_suites()
    if path.is_file() or str(spec) in shipped:
        return path if path.is_file() else shipped[str(spec)]
    if path.is_dir():
        raise LmforgeError(f"{flag} '{spec}' is a folder; pass {what} or a shipped suite ({', '.join(sorted(shipped))})")
    raise LmforgeError(f"{flag} '{spec}' does not exist; pass {what} or a shipped suite "
                       f"({', '.join(sorted(shipped)) or 'none'}){did_you_mean(str(spec), shipped)}")


def jsonl_values(path: Path, flag: str) -> list[tuple[int, Any]]:
    """(line number, JSON value) of each line of `path`, blank lines and `#` lines skipped; a bad line is one error."""
    values = []
    for number, text in enumerate(utf8_lines(path, flag), 1):
        if text.strip() and not text.lstrip().startswith("#"):
            try:
                values.append((number, json.loads(text)))
            except json.JSONDecodeError as exc:
                raise LmforgeError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno}); "
                                   "write one JSON object per line") from None
    return values


def load_suite(path: str | Path) -> list[Probe]:
    path = resolve_suite(path)
    probes: dict[str, Probe] = {}
    for number, data in jsonl_values(path, "--suite"):
        probe = parse_probe(data, f"{path}:{number}", f"line{number}")
        if probe.id in probes:
            raise LmforgeError(f"{path}:{number}: probe id '{probe.id}' is used twice; give each probe its own id")
        probes[probe.id] = probe
    if not probes:
        raise LmforgeError(f"--suite '{path}' holds no probes; write one JSON object per line")
    return list(probes.values())


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
        passed = {t: [c.passed for c in self.checks if c.type == t] for t in CHECK_TYPES}
        return {t: {"passed": sum(p), "total": len(p), "pass_rate": sum(p) / len(p)} for t, p in passed.items() if p}

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


def probe_run(load: Callable[[], Run], run_dir: str | Path, suite: str | Path,
              **about: Any) -> tuple[Path, ProbeReport, dict[str, Any]]:
    """Probe the run `load()` gives with `suite` (read and checked first, before the model loads): where
    `lmforge report` reads the result, the report, and the result as JSON."""
    from lmforge.evaluation.report import result_path

    path = resolve_suite(suite)
    probes = load_suite(path)
    report = run_suite(load(), probes, path.stem)
    return result_path(run_dir, "probe", path.stem), report, {"run": str(run_dir), **about, **report.to_dict()}
