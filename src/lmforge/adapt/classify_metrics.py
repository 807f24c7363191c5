"""How well a classifier does: accuracy, per-class precision and recall, and the confusion matrix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def confusion(labels: list[str], truth: list[str], predicted: list[str]) -> np.ndarray:
    """(K, K) counts: row = the true label, column = the predicted one."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, ([index[t] for t in truth], [index[p] for p in predicted]), 1)
    return matrix


def scores(matrix: np.ndarray) -> dict[str, object]:
    """Accuracy, and each class's precision (right among those predicted as it) and recall (found among its own);
    a class never predicted (or absent) has precision (recall) 0."""
    right = np.diag(matrix).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.nan_to_num(right / matrix.sum(axis=0))
        recall = np.nan_to_num(right / matrix.sum(axis=1))
    return {"accuracy": float(right.sum() / max(matrix.sum(), 1)), "precision": precision.tolist(),
            "recall": recall.tolist(), "support": matrix.sum(axis=1).tolist()}


def table(labels: list[str], matrix: np.ndarray) -> str:
    """A Markdown report: accuracy, per-class precision/recall/support, and the confusion matrix."""
    s = scores(matrix)
    lines = [f"accuracy {s['accuracy']:.3f} on {int(matrix.sum())} examples", "",
             "| class | precision | recall | support |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {label} | {p:.3f} | {r:.3f} | {n} |"
              for label, p, r, n in zip(labels, s["precision"], s["recall"], s["support"])]
    lines += ["", "| true \\ predicted | " + " | ".join(labels) + " |", "| --- |" + " ---: |" * len(labels)]
    lines += [f"| {label} | " + " | ".join(str(v) for v in row) + " |" for label, row in zip(labels, matrix)]
    return "\n".join(lines) + "\n"


def draw_confusion(labels: list[str], matrix: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2, 1.2 * len(labels) + 1.5))
    ax.imshow(matrix, cmap="Blues")
    ax.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels, yticklabels=labels,
           xlabel="predicted", ylabel="true", title=f"accuracy {scores(matrix)['accuracy']:.3f}")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > matrix.max() / 2 else "black")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)


def write_report(labels: list[str], truth: list[str], predicted: list[str], out: Path) -> str:
    """The table of `truth` against `predicted`, also written to `out` with scores.json and confusion.png."""
    matrix = confusion(labels, truth, predicted)
    report = table(labels, matrix)
    (out / "report.md").write_text(report, encoding="utf-8")
    (out / "scores.json").write_text(json.dumps(scores(matrix), indent=1) + "\n", encoding="utf-8")
    draw_confusion(labels, matrix, out / "confusion.png")
    return report
