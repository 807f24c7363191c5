"""`curves.png`: train/val loss, learning rate and gradient norm against the step."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def draw_curves(records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    train = [r for r in records if r["event"] == "train"]
    evals = [r for r in records if r["event"] == "eval"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.13, top=0.92, wspace=0.3)  # fixed: tight_layout costs more than the plot
    ax = axes[0]
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], alpha=0.4, label="train (batch)")
    ax.plot([r["step"] for r in evals], [r["train_loss"] for r in evals], "o-", label="train")
    ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-", label="val")
    ax.set(title="loss (nats/token)", xlabel="step")
    ax.legend()
    axes[1].plot([r["step"] for r in train], [r["lr"] for r in train])
    axes[1].set(title="learning rate", xlabel="step")
    normed = [r for r in train if r["grad_norm"] > 0]  # a model fitted from counts has no gradient
    axes[2].plot([r["step"] for r in normed], [r["grad_norm"] for r in normed])
    axes[2].set(title="gradient norm (before clipping)", xlabel="step", yscale="log")
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)
