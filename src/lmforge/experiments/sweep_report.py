"""What a sweep writes: `sweep.csv`, `sweep.md` and `sweep.png` (val loss against the swept value, against tokens
seen and against wall time, one curve per point)."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

COLUMNS = ("params", "steps", "tokens_seen", "seconds", "val_loss", "val_bpb", "peak_rss_mb")


def write_table(rows: list[dict[str, Any]], keys: list[str], out: Path) -> None:
    """sweep.csv (every column) and sweep.md (a Markdown table of the same)."""
    header = [*keys, *COLUMNS]
    tmp = out / "sweep.csv.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out / "sweep.csv")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(keys) + " ---: |" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(row.get(h)) for h in header) + " |" for row in rows]
    (out / "sweep.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if value < 100 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def draw(rows: list[dict[str, Any]], curves: dict[str, list[dict[str, Any]]], key: str, out: Path) -> None:
    """Three panels: best val loss against `key` (the first swept setting), and each point's eval curve against
    tokens seen and against seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    xs = [row[key] for row in rows]
    numeric = all(_is_number(x) for x in xs)
    axes[0].plot([float(x) for x in xs] if numeric else xs, [row["val_loss"] for row in rows], "o-")
    axes[0].set(title="best val loss", xlabel=key, ylabel="nats/token", xscale="log" if numeric and len(xs) > 2 else "linear")
    for name, evals in curves.items():
        axes[1].plot([r["tokens_seen"] for r in evals], [r["val_loss"] for r in evals], "o-", label=name, ms=3)
        axes[2].plot([r["elapsed_s"] for r in evals], [r["val_loss"] for r in evals], "o-", label=name, ms=3)
    axes[1].set(title="val loss against tokens seen", xlabel="tokens")
    axes[2].set(title="val loss against wall time", xlabel="seconds")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    tmp = out / "sweep.tmp.png"
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, out / "sweep.png")


def _is_number(x: Any) -> bool:
    try:
        float(x)
        return True
    except (TypeError, ValueError):
        return False
