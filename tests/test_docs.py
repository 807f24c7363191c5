"""The guide in docs/ cannot drift from the tool.

Fast: every relative link and image in docs/ resolves, the figures stay small, every chapter the
index promises exists, and every `lmforge` command of every ```bash/```console block parses with
lmforge's own parser (its subcommand, flags and --section.key overrides; a `train` line's overrides
are validated against the config). Slow: every block runs as written, chapter by chapter in one
working directory, as a reader would run them (`<!-- docs-test: skip (why) -->` blocks excepted).
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from lmforge.cli import build_parser, command_module
from lmforge.commands.train import build_config, parse_overrides

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SHAKESPEARE = [p / "shared" / "data" / "tinyshakespeare.txt" for p in (ROOT.parent, ROOT.parents[1])]
CHAPTERS = ["01-tokens", "02-counting", "03-embeddings-and-rnns", "04-attention-and-transformers",
            "05-training", "06-decoding", "07-evaluation", "08-using-models"]
NOT_YET = "needs lmforge"  # a skip reason that starts so names a command still to come: its lines are not parsed


def load_make_figures():
    spec = importlib.util.spec_from_file_location("make_figures", DOCS / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_figures"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


MF = load_make_figures()
BLOCKS = [b for path in MF.chapters() for b in MF.command_blocks(path)]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)'?\"?")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def anchors(path: Path) -> set[str]:
    """The #fragments a code host gives `path`'s headings (lower case, punctuation dropped, spaces to -)."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_chapter_exists_and_the_index_links_it():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for name in CHAPTERS:
        assert (DOCS / f"{name}.md").is_file(), f"docs/{name}.md is missing"
        assert f"({name}.md)" in index, f"docs/README.md does not link {name}.md"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
def test_relative_links_resolve(path):
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # links inside code blocks are not links
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        file, _, fragment = target.partition("#")
        assert (path.parent / file).exists(), f"{path.name}: broken link {target}"
        if fragment and file.endswith(".md"):
            assert fragment in anchors(path.parent / file), f"{path.name}: {target} names no heading of {file}"


def test_the_readme_is_a_landing_page_under_8000_characters():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text) < 8000, f"README.md is {len(text):,} characters; move detail to docs/reference.md"
    assert "(docs/README.md)" in text and "(docs/reference.md" in text


def test_figures_are_small():
    for png in (DOCS / "figures").glob("*.png"):
        assert png.stat().st_size < 150_000, f"{png.name} is {png.stat().st_size:,} bytes; keep figures < 150 KB"


def logical_lines(code: str) -> list[str]:
    """The block's shell lines, continuations joined, comments and heredoc bodies left out."""
    lines, end = [], None
    for line in code.replace("\\\n", " ").splitlines():
        if end is not None:
            end = None if line.strip() == end else end
            continue
        m = HEREDOC.search(line)
        if m:
            end = m.group(1)
        lines.append(line)
    return lines


def lmforge_invocations(code: str) -> list[list[str]]:
    """The arguments after every `lmforge` (or `-m lmforge`) in the block, up to the next shell operator."""
    found = []
    loops = {m.group(1): m.group(2).split()[0] for m in re.finditer(r"\bfor (\w+) in ([^;\n]+); do", code)}
    for line in logical_lines(code):
        for name, first in loops.items():  # a loop's variable stands for its first value
            line = re.sub(rf"\$\{{?{name}\b\}}?", first, line)
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.commenters = "#"
        lexer.whitespace_split = True
        try:
            tokens = list(lexer)
        except ValueError as exc:
            raise AssertionError(f"cannot split {line!r}: {exc}") from exc
        for i, token in enumerate(tokens):
            if token != "lmforge" or (i and tokens[i - 1] not in ("-m", "&&", ";", "|", "||", "(", "time", "do", "then")
                                      and not tokens[i - 1].endswith("=")):
                continue
            args = []
            for arg in tokens[i + 1:]:
                if re.fullmatch(r"[();<>|&]+", arg):
                    break
                args.append(arg)
            if args and re.fullmatch(r"\d", args[-1]) and tokens[i + 1 + len(args):][:1] == [">"]:
                args.pop()  # 2> redirect
            found.append(args)
    return found


PARSED = [(b, args) for b in BLOCKS if not (b.skip or "").startswith(NOT_YET) for args in lmforge_invocations(b.code)]


def test_the_guide_has_commands():
    assert len(PARSED) >= 40, "the chapters should hold the commands the reader runs"


@pytest.mark.parametrize("block,args", PARSED, ids=[f"{b.name}:{' '.join(a[:2])}" for b, a in PARSED])
def test_command_parses(block, args):
    parser = build_parser()
    try:
        parsed, extra = parser.parse_known_args(args)
    except SystemExit as exc:
        pytest.fail(f"{block.name}: `lmforge {' '.join(args)}` does not parse (exit {exc.code})")
    assert parsed.command, f"{block.name}: no subcommand in `lmforge {' '.join(args)}`"
    if extra:
        module = command_module(parsed.command)
        assert getattr(module, "ACCEPTS_OVERRIDES", False), f"{block.name}: unrecognized {extra}"
        overrides = parse_overrides(extra)
        if parsed.command == "train" and not parsed.resume and not parsed.init_from:
            build_config(parsed, overrides)  # raises on a key or value the config refuses


def test_skips_say_why():
    for path in markdown_files():
        for line in path.read_text(encoding="utf-8").splitlines():
            if "docs-test" in line:
                assert MF.SKIP.search(line), f"{path.name}: write skips as <!-- docs-test: skip (why) -->"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    source = next((p for p in SHAKESPEARE if p.is_file()), None)
    if source is None:
        pytest.skip("needs ../shared/data/tinyshakespeare.txt (the guide's second corpus)")
    work = tmp_path_factory.mktemp("guide")
    shutil.copy(source, work / "tinyshakespeare.txt")
    return work


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_as_written(chapter, workdir):
    """Chapters run in order in one directory, since later ones reuse the runs of earlier ones."""
    env = MF.guide_env(ROOT / "src")
    for block in MF.command_blocks(DOCS / f"{chapter}.md"):
        if block.skip:
            continue
        rc, out, _, _ = MF.run_block(block, workdir, env)
        assert rc == 0, f"{block.name} exited {rc}:\n{block.code}\n{out[-3000:]}"


def table_rows(path: Path, heading: str) -> list[list[str]]:
    """The cells of the first table under `heading`, header and rule left out, as written."""
    section = path.read_text(encoding="utf-8").split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = section.split("\n\n|", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    return [[cell.strip() for cell in line.strip().strip("|").split(" | ")] for line in lines]


def test_the_training_options_table_lists_every_train_key_with_its_default():
    """The reference promises every option: a key added to TrainConfig, or a default changed, must show there."""
    from lmforge.config import TrainConfig

    rows = table_rows(DOCS / "reference.md", "## Training options")
    documented = {row[0].strip("`"): row[1].strip("`") for row in rows}
    assert sorted(documented) == sorted(TrainConfig.model_fields), "docs/reference.md#training-options"
    for key, field in TrainConfig.model_fields.items():
        shown = documented[key]
        want = field.default
        if isinstance(want, bool):
            assert shown == str(want).lower(), f"train.{key}: the table says {shown}, the config {want}"
        elif isinstance(want, (int, float)):
            assert float(shown) == want, f"train.{key}: the table says {shown}, the config {want}"
        else:
            assert shown == want, f"train.{key}: the table says {shown}, the config {want}"


def test_the_decoding_table_names_flags_of_lmforge_sample():
    sample = build_parser()._subparsers._group_actions[0].choices["sample"]
    flags = {s for action in sample._actions for s in action.option_strings}
    for row in table_rows(DOCS / "reference.md", "## Decoding"):
        for flag in re.findall(r"--[a-z-]+", row[1]):
            assert flag in flags, f"docs/reference.md#decoding names {flag}, which `lmforge sample` lacks"


def test_the_model_families_table_names_real_keys_and_every_allowed_value():
    """A key renamed, or a new `--model.positions`/`mlp`/... choice, must show in the families table."""
    from typing import Literal, get_args, get_origin

    from lmforge.config import ModelConfig

    fields = ModelConfig.model_fields
    choices = {k: get_args(f.annotation) for k, f in fields.items() if get_origin(f.annotation) is Literal}
    for row in table_rows(DOCS / "reference.md", "## Three model families, and comparing them"):
        named = re.findall(r"`([^`]+)`", row[1])
        keys = [n for n in named if n in fields]
        for name in named:
            assert name in fields or any(name in c for c in choices.values()), f"families table: `{name}`?"
        for key in keys:
            missing = set(choices.get(key, ())) - set(named)
            assert not missing, f"families table: {key} can also be {sorted(missing)}"
