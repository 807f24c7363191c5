"""`lmforge presets`: list the named presets."""

from __future__ import annotations

import argparse

HELP = "list the named presets"

EXAMPLES = """examples:
  lmforge presets"""


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.config_files import preset_names, preset_summary

    names = preset_names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {preset_summary(name)}")
    return 0
