"""Configs on disk: the named presets shipped in `lmforge/presets/`, and users' YAML files, each a nested dict
of values that `config.Config` merges and checks."""

from __future__ import annotations

import itertools
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lmforge.errors import LmforgeError, did_you_mean


def _preset_text(name: str) -> str:
    return (resources.files("lmforge") / "presets" / f"{name}.yaml").read_text(encoding="utf-8")


def preset_names() -> list[str]:
    folder = resources.files("lmforge") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_summary(name: str) -> str:
    """The first sentence of a preset file's opening comment: what the preset is for."""
    lines = _preset_text(name).splitlines()
    comment = itertools.takewhile(lambda line: line.startswith("#") and line.strip("# "), lines)
    summary = " ".join(line.lstrip("# ").strip() for line in comment)
    return summary.split(". ")[0].rstrip(".")


def load_preset(name: str) -> dict[str, Any]:
    names = preset_names()
    if name not in names:
        raise LmforgeError(f"unknown preset '{name}'{did_you_mean(name, names)}; presets are {', '.join(names)}")
    return yaml.safe_load(_preset_text(name)) or {}


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise LmforgeError(f"config file '{path}' is a folder; pass --config with the path to a YAML file")
    if not path.is_file():
        raise LmforgeError(f"config file '{path}' does not exist; pass --config with the path to a YAML file")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LmforgeError(f"config file '{path}' is not valid YAML ({first}); fix the file") from None
    return values or {}
