"""Prompt probes: small, named checks of what a model does with a prompt.

A suite is a JSONL file, one probe per line (blank lines and lines starting
with `#` are skipped). A probe is one of three kinds:

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

Every check counts once in the summary under its type (`contains`,
`not_contains`, `regex`, `choices`, `consistency`); a probe with several checks
passes when all of them do.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmforge.errors import LmforgeError, did_you_mean

if TYPE_CHECKING:
    from lmforge.run import Run

CHECK_TYPES = ("contains", "not_contains", "regex", "choices", "consistency")
AGREE_ON = ("first_word", "first_line", "all")
KEYS = {
    "id", "prompt", "prompts", "contains", "not_contains", "regex", "choices", "answer", "length_normalize",
    "agree_on", "ignore_case", "max_new_tokens", "greedy", "temperature", "top_k", "top_p", "seed", "note",
}
DEFAULT_MAX_NEW_TOKENS = 40


@dataclass
class Probe:
    id: str
    prompts: list[str]  # one prompt, or several paraphrases for a consistency group
    contains: list[str] = field(default_factory=list)  # alternatives: any one passes
    not_contains: list[str] = field(default_factory=list)
    regex: str | None = None
    choices: list[str] = field(default_factory=list)
    answer: int | None = None  # index into choices
    length_normalize: bool = False
    agree_on: str = "first_word"
    ignore_case: bool = False
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    greedy: bool = True
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    @property
    def is_group(self) -> bool:
        return len(self.prompts) > 1

    @property
    def check_types(self) -> list[str]:
        if self.is_group:
            return ["consistency"]
        types = [t for t in ("contains", "not_contains") if getattr(self, t)]
        types += ["regex"] if self.regex is not None else []
        types += ["choices"] if self.choices else []
        return types


@dataclass
class CheckResult:
    probe: str
    type: str
    passed: bool
    detail: str  # what was seen, in a line a person can read
    outputs: dict[str, Any] = field(default_factory=dict)  # continuations, choice scores


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
            checks = [c for c in self.checks if c.type == t]
            if checks:
                passed = sum(c.passed for c in checks)
                out[t] = {"passed": passed, "total": len(checks), "pass_rate": passed / len(checks)}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "passed": self.passed,
            "total": len(self.checks),
            "pass_rate": self.pass_rate,
            "by_type": self.by_type(),
            "checks": [asdict(c) for c in self.checks],
        }


# ---------------------------------------------------------------------- reading a suite


def _strings(value: Any, key: str, where: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) and s for s in items):
        raise LmforgeError(f"{where}: '{key}' must be a non-empty string or a list of them")
    return items


def parse_probe(data: Any, where: str, default_id: str) -> Probe:
    """One probe from its JSON object; `where` (file:line) prefixes every error."""
    if not isinstance(data, dict):
        raise LmforgeError(f"{where}: a probe is a JSON object like {{\"prompt\": \"...\", \"contains\": \"...\"}}")
    for key in data:
        if key not in KEYS:
            raise LmforgeError(f"{where}: unknown probe key '{key}'{did_you_mean(key, KEYS)}; keys are {', '.join(sorted(KEYS))}")
    if ("prompt" in data) == ("prompts" in data):
        raise LmforgeError(f"{where}: give either 'prompt' (one prompt) or 'prompts' (a consistency group), not both or neither")
    if "prompt" in data:
        prompts = _strings(data["prompt"], "prompt", where)
        if len(prompts) != 1:
            raise LmforgeError(f"{where}: 'prompt' is one string; use 'prompts' for a group of paraphrases")
    else:
        prompts = _strings(data["prompts"], "prompts", where)
        if len(prompts) < 2:
            raise LmforgeError(f"{where}: a consistency group needs at least two 'prompts'")
    probe = Probe(id=str(data.get("id", default_id)), prompts=prompts)
    if "contains" in data:
        probe.contains = _strings(data["contains"], "contains", where)
    if "not_contains" in data:
        probe.not_contains = _strings(data["not_contains"], "not_contains", where)
    if "regex" in data:
        if not isinstance(data["regex"], str):
            raise LmforgeError(f"{where}: 'regex' must be a string (a Python regular expression)")
        try:
            re.compile(data["regex"])
        except re.error as exc:
            raise LmforgeError(f"{where}: 'regex' {data['regex']!r} is not a valid regular expression ({exc})") from None
        probe.regex = data["regex"]
    if "choices" in data:
        probe.choices = _strings(data["choices"], "choices", where)
        if len(probe.choices) < 2:
            raise LmforgeError(f"{where}: 'choices' needs at least two choices")
    if "answer" in data:
        probe.answer = _answer_index(data["answer"], probe.choices, where)
    elif probe.choices and not probe.is_group:
        raise LmforgeError(f"{where}: a multiple-choice probe needs 'answer' (the right choice's text or index)")
    for key in ("length_normalize", "ignore_case", "greedy"):
        if key in data:
            if not isinstance(data[key], bool):
                raise LmforgeError(f"{where}: '{key}' must be true or false")
            setattr(probe, key, data[key])
    if "agree_on" in data:
        if data["agree_on"] not in AGREE_ON:
            raise LmforgeError(f"{where}: 'agree_on' must be one of {', '.join(AGREE_ON)}, not {data['agree_on']!r}")
        probe.agree_on = data["agree_on"]
    _parse_decoding(probe, data, where)
    if probe.is_group:
        extra = [k for k in ("contains", "not_contains", "regex") if k in data]
        if extra:
            raise LmforgeError(f"{where}: a consistency group ('prompts') takes 'choices' or 'agree_on', not {extra[0]!r}; "
                               "check each paraphrase with its own probe")
    elif not probe.check_types:
        raise LmforgeError(f"{where}: the probe checks nothing; add 'contains', 'not_contains', 'regex' or 'choices'")
    return probe


def _answer_index(answer: Any, choices: list[str], where: str) -> int:
    if not choices:
        raise LmforgeError(f"{where}: 'answer' needs 'choices' to pick from")
    if isinstance(answer, bool) or not isinstance(answer, (int, str)):
        raise LmforgeError(f"{where}: 'answer' is the right choice's text or its index")
    if isinstance(answer, int):
        if not 0 <= answer < len(choices):
            raise LmforgeError(f"{where}: 'answer' index {answer} is out of range for {len(choices)} choices")
        return answer
    if answer not in choices:
        raise LmforgeError(f"{where}: 'answer' {answer!r} is not one of the choices {choices}")
    return choices.index(answer)


def _parse_decoding(probe: Probe, data: dict[str, Any], where: str) -> None:
    def number(key: str, kind: type, ok, rule: str) -> None:
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
                raise LmforgeError(f"{where}: '{key}' must be a number ({rule})")
            if not ok(value):
                raise LmforgeError(f"{where}: '{key}' must be {rule}, not {value}")
            setattr(probe, key, kind(value))

    number("max_new_tokens", int, lambda v: v >= 1, "at least 1")
    number("temperature", float, lambda v: v > 0, "above 0")
    number("top_k", int, lambda v: v >= 0, "0 or more")
    number("top_p", float, lambda v: 0 < v <= 1, "in (0, 1]")
    number("seed", int, lambda v: True, "an integer")
    if any(k in data for k in ("temperature", "top_k", "top_p")) and "greedy" not in data:
        probe.greedy = False  # asking for a sampling setting means sampling


def shipped_suites() -> dict[str, Path]:
    """The example suites that come with lmforge (src/lmforge/suites/NAME.jsonl), by name."""
    from importlib import resources

    folder = resources.files("lmforge") / "suites"
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".jsonl")}


def resolve_suite(spec: str | Path) -> Path:
    """A suite file's path, or the path of a shipped suite named `spec` (e.g. 'sotu')."""
    path = Path(spec)
    if path.is_file():
        return path
    shipped = shipped_suites()
    if str(spec) in shipped:
        return shipped[str(spec)]
    names = ", ".join(sorted(shipped)) or "none"
    raise LmforgeError(f"--suite '{spec}' does not exist; pass a JSONL file of probes or a shipped suite "
                       f"({names}){did_you_mean(str(spec), shipped)}")


def load_suite(path: str | Path) -> list[Probe]:
    path = resolve_suite(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise LmforgeError(f"--suite '{path}' is not UTF-8 text; save it as UTF-8 JSONL") from None
    probes, seen = [], set()
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LmforgeError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); one probe object per line") from None
        probe = parse_probe(data, where, default_id=f"line{number}")
        if probe.id in seen:
            raise LmforgeError(f"{where}: probe id '{probe.id}' is used twice; give each probe its own id")
        seen.add(probe.id)
        probes.append(probe)
    if not probes:
        raise LmforgeError(f"--suite '{path}' holds no probes; write one JSON object per line")
    return probes


# ---------------------------------------------------------------------- running a suite


def continuation(run: Run, probe: Probe, prompt: str) -> str:
    """The probe's continuation of `prompt`: greedy, or sampled with its seed."""
    text = run.generate(prompt, probe.max_new_tokens, greedy=probe.greedy, temperature=probe.temperature,
                        top_k=probe.top_k, top_p=probe.top_p, seed=probe.seed)
    return text[len(prompt):]


def choice_scores(run: Run, prompt: str, probe: Probe) -> list[float]:
    """The log-likelihood of each choice after `prompt`, encoded with it (per byte of the choice if asked)."""
    from lmforge.evaluation.scoring import continuation_logprobs, split_at_prompt

    block = run.model.context_size or run.config.model.block_size
    scores = []
    for choice in probe.choices:
        context, scored = split_at_prompt(run.tokenizer, prompt, choice)
        total = float(continuation_logprobs(run.model, context, scored, block, run.device).sum())
        scores.append(total / len(choice.encode("utf-8")) if probe.length_normalize else total)
    return scores


def _short(text: str, limit: int = 80) -> str:
    """A continuation quoted for a one-line detail, cut to `limit` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _norm(text: str, ignore_case: bool) -> str:
    return text.lower() if ignore_case else text


def agreement_key(text: str, agree_on: str) -> str:
    """The part of a continuation that paraphrases must agree on."""
    if agree_on == "all":
        return text.strip()
    if agree_on == "first_line":
        stripped = text.strip()
        return stripped.splitlines()[0].strip() if stripped else ""
    words = text.split()
    return re.sub(r"^\W+|\W+$", "", words[0]).lower() if words else ""


def run_probe(run: Run, probe: Probe) -> list[CheckResult]:
    if probe.is_group:
        return [_consistency(run, probe)]
    prompt = probe.prompts[0]
    results = []
    if probe.contains or probe.not_contains or probe.regex is not None:
        text = continuation(run, probe, prompt)
        seen = _norm(text, probe.ignore_case)
        shown = {"continuation": text}
        if probe.contains:
            hits = [s for s in probe.contains if _norm(s, probe.ignore_case) in seen]
            detail = f"found {hits[0]!r}" if hits else f"none of {probe.contains} in {_short(text)}"
            results.append(CheckResult(probe.id, "contains", bool(hits), detail, shown))
        if probe.not_contains:
            hits = [s for s in probe.not_contains if _norm(s, probe.ignore_case) in seen]
            detail = f"found {hits[0]!r} in {_short(text)}" if hits else f"none of {probe.not_contains}"
            results.append(CheckResult(probe.id, "not_contains", not hits, detail, shown))
        if probe.regex is not None:
            match = re.search(probe.regex, text, re.IGNORECASE if probe.ignore_case else 0)
            detail = f"matched {match.group(0)!r}" if match else f"/{probe.regex}/ not in {_short(text)}"
            results.append(CheckResult(probe.id, "regex", match is not None, detail, shown))
    if probe.choices:
        scores = choice_scores(run, prompt, probe)
        best = max(range(len(scores)), key=scores.__getitem__)
        detail = f"ranked {probe.choices[best]!r} first" + ("" if best == probe.answer else
                                                                f", not {probe.choices[probe.answer]!r}")
        results.append(CheckResult(probe.id, "choices", best == probe.answer, detail,
                                   {"scores": dict(zip(probe.choices, scores)), "chosen": probe.choices[best]}))
    return results


def _consistency(run: Run, probe: Probe) -> CheckResult:
    if probe.choices:
        picks = []
        for prompt in probe.prompts:
            scores = choice_scores(run, prompt, probe)
            picks.append(probe.choices[max(range(len(scores)), key=scores.__getitem__)])
        agree = len(set(picks)) == 1
        right = probe.answer is None or picks[0] == probe.choices[probe.answer]
        if agree and right:
            detail = f"all {len(picks)} prompts ranked {picks[0]!r} first"
        elif agree:
            detail = f"all prompts ranked {picks[0]!r} first, not the answer {probe.choices[probe.answer]!r}"
        else:
            detail = "prompts disagree: " + ", ".join(f"{p!r}→{c!r}" for p, c in zip(probe.prompts, picks))
        return CheckResult(probe.id, "consistency", agree and right, detail, {"picks": picks})
    texts = [continuation(run, probe, prompt) for prompt in probe.prompts]
    keys = [agreement_key(t, probe.agree_on) for t in texts]
    agree = len(set(keys)) == 1 and keys[0] != ""
    detail = (f"all {len(keys)} prompts agree on {keys[0]!r}" if agree
              else f"{probe.agree_on} differs: " + ", ".join(repr(k) for k in keys))
    return CheckResult(probe.id, "consistency", agree, detail, {"continuations": texts, "keys": keys})


def run_suite(run: Run, probes: list[Probe], suite_name: str = "suite") -> ProbeReport:
    checks: list[CheckResult] = []
    for probe in probes:
        checks.extend(run_probe(run, probe))
    return ProbeReport(suite_name, checks)


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
