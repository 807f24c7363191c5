"""Reading a probe suite: the schema of a line, declared, and the probes each line asks for.

A suite is a JSONL file, one probe per line (blank lines and `#` lines skipped); the
kinds of probe and what they check are described in `probes.py`. `ProbeLine`
declares every key, its type and its rule; pydantic checks them, and its first
complaint becomes one line that names the file, the line and the key.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError,
                      model_validator)

from lmforge.errors import LmforgeError, did_you_mean
from lmforge.evaluation.probes import ChoiceProbe, ConsistencyProbe, ContinuationProbe, Probe


# ---------------------------------------------------------------------- the schema of a line


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


Strings = Annotated[Any, AfterValidator(_strings)]  # one string, or a list of alternatives


class ProbeLine(BaseModel):
    """One line of a suite, as written: every key, its type and its rule."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str | None = None  # checked lines get "lineN" when it is left out
    note: str | None = None  # for the reader of the suite; not used
    prompt: Annotated[Any, AfterValidator(lambda v: v if isinstance(v, str) and v else _fail(
        "is one non-empty string; use 'prompts' for a group of paraphrases"))] | None = None
    prompts: Strings | None = None
    contains: Strings = []
    not_contains: Strings = []
    regex: Annotated[str, AfterValidator(_pattern)] | None = None
    choices: Annotated[Strings, AfterValidator(lambda v: v if len(v) > 1 else _fail("needs at least two choices"))] = []
    answer: Union[StrictInt, str] | None = None  # the right choice, as its text or its index; checked, an index
    length_normalize: StrictBool = False
    agree_on: Literal["first_word", "first_line", "all"] = "first_word"
    ignore_case: StrictBool = False
    max_new_tokens: Annotated[StrictInt, Field(ge=1)] = 40
    greedy: StrictBool | None = None  # None: greedy unless a sampling setting is given
    temperature: Annotated[float, Field(gt=0)] = 1.0
    top_k: Annotated[StrictInt, Field(ge=0)] = 0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    seed: StrictInt = 0

    def text_checks(self) -> list[str]:
        return [k for k in ("contains", "not_contains") if getattr(self, k)] + ["regex"] * (self.regex is not None)

    @model_validator(mode="after")
    def _one_kind(self) -> ProbeLine:
        if (self.prompt is None) == (self.prompts is None):
            _fail("give either 'prompt' (one prompt) or 'prompts' (a consistency group), not both or neither")
        if self.prompts is not None and len(self.prompts) < 2:
            _fail("a consistency group needs at least two 'prompts'")
        if self.prompts is not None and self.text_checks():
            _fail(f"a consistency group ('prompts') takes 'choices' or 'agree_on', not '{self.text_checks()[0]}'; "
                  "check each paraphrase with its own probe")
        if self.prompt is not None and not self.text_checks() and not self.choices:
            _fail("the probe checks nothing; add 'contains', 'not_contains', 'regex' or 'choices'")
        if self.answer is not None and not self.choices:
            _fail("'answer' needs 'choices' to pick from")
        if self.answer is None and self.choices and self.prompt is not None:
            _fail("a multiple-choice probe needs 'answer' (the right choice's text or index)")
        if isinstance(self.answer, int) and not 0 <= self.answer < len(self.choices):
            _fail(f"'answer' index {self.answer} is out of range for {len(self.choices)} choices")
        if isinstance(self.answer, str) and self.answer not in self.choices:
            _fail(f"'answer' {self.answer!r} is not one of the choices {self.choices}")
        if isinstance(self.answer, str):
            self.answer = self.choices.index(self.answer)
        return self

    def sampling(self) -> dict[str, Any]:
        """The `Run.generate` settings: asking for a sampling setting means sampling."""
        asked = self.model_fields_set & {"temperature", "top_k", "top_p"}
        greedy = self.greedy if self.greedy is not None else not asked
        return dict(greedy=greedy, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, seed=self.seed)


def _one_line(exc: ValidationError, where: str) -> LmforgeError:
    """pydantic's first complaint as one line that names the key and the rule."""
    error = exc.errors()[0]
    key = str(error["loc"][0]) if error["loc"] else ""  # ('answer', 'int'): the key, not the union member
    message = error["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    if error["type"] == "extra_forbidden":
        keys = ProbeLine.model_fields
        return LmforgeError(f"{where}: unknown probe key '{key}'{did_you_mean(key, keys)}; "
                            f"keys are {', '.join(sorted(keys))}")
    if error["type"] == "model_type":
        return LmforgeError(f"{where}: a probe is a JSON object like {{\"prompt\": \"...\", \"contains\": \"...\"}}")
    if error["type"].startswith(("greater_than", "less_than")):
        message += f", not {error['input']}"
    return LmforgeError(f"{where}: '{key}' {message}" if key else f"{where}: {message}")


def parse_probe(data: Any, where: str, default_id: str) -> list[Probe]:
    """The probes one line's JSON value asks for; `where` (file:line) prefixes every error."""
    try:
        line = ProbeLine.model_validate(data)
    except ValidationError as exc:
        raise _one_line(exc, where) from None
    line.id = line.id or default_id
    if line.prompts is not None:
        return [ConsistencyProbe(line)]
    probes = [ContinuationProbe(line)] if line.text_checks() else []
    return probes + ([ChoiceProbe(line)] if line.choices else [])


# ---------------------------------------------------------------------- reading a suite


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


def jsonl_values(path: Path, flag: str) -> list[tuple[int, Any]]:
    """(line number, JSON value) of each line of `path`, blank lines and `#` lines skipped; a bad line is one error."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise LmforgeError(f"{flag} '{path}' is not UTF-8 text; save it as UTF-8") from None
    values = []
    for number, text in enumerate(lines, 1):
        if text.strip() and not text.lstrip().startswith("#"):
            try:
                values.append((number, json.loads(text)))
            except json.JSONDecodeError as exc:
                raise LmforgeError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno}); "
                                   "write one JSON object per line") from None
    return values


def load_suite(path: str | Path) -> list[Probe]:
    path = resolve_suite(path)
    probes, seen = [], set()
    for number, data in jsonl_values(path, "--suite"):
        where = f"{path}:{number}"
        found = parse_probe(data, where, default_id=f"line{number}")
        if found[0].line.id in seen:
            raise LmforgeError(f"{where}: probe id '{found[0].line.id}' is used twice; give each probe its own id")
        seen.add(found[0].line.id)
        probes.extend(found)
    if not probes:
        raise LmforgeError(f"--suite '{path}' holds no probes; write one JSON object per line")
    return probes
