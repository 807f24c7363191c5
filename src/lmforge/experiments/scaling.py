"""A power law for loss against model size (and tokens), fitted to a sweep at a fixed compute budget.

L(N) = E + A · N^(-α): E is the loss no model size removes (the text's entropy under this
setup, plus what the budget leaves), α how fast size pays. With a handful of points a
three-parameter fit is fragile, so it is done the robust way: for each E on a grid below the
smallest loss, log(L - E) against log N is a straight line fitted by least squares, and the E
with the smallest squared error in L wins. The same is done against tokens seen, L(D).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmforge.errors import LmforgeError


@dataclass
class PowerLaw:
    E: float
    A: float
    alpha: float
    rmse: float

    def __call__(self, x: float | np.ndarray) -> float | np.ndarray:
        return self.E + self.A * np.asarray(x, dtype=float) ** -self.alpha

    def describe(self, var: str) -> str:
        return f"L({var}) = {self.E:.3f} + {self.A:.3g} · {var}^({-self.alpha:.3f}) (rmse {self.rmse:.4f})"


def fit_power_law(x: list[float], loss: list[float]) -> PowerLaw:
    """The best L = E + A x^-α through the points (x > 0), or a one-line error when they cannot fix one."""
    x_arr, y = np.asarray(x, dtype=float), np.asarray(loss, dtype=float)
    if len(x_arr) < 3 or len(set(x_arr)) < 3 or (x_arr <= 0).any():
        raise LmforgeError("a power-law fit needs at least 3 points of distinct positive sizes; sweep more values")
    top = y.min() * (1 - 1e-6)
    candidates = np.linspace(0.0, top, 400)
    for _ in range(3):  # a coarse grid of E, then finer grids around the best
        best = min((_line_fit(x_arr, y, E) for E in candidates), key=lambda law: law.rmse)
        step = candidates[1] - candidates[0]
        candidates = np.linspace(max(best.E - step, 0.0), min(best.E + step, top), 200)
    return best


def _line_fit(x: np.ndarray, y: np.ndarray, E: float) -> PowerLaw:
    """With E fixed, log(L - E) = log A - α log x is a straight line: least squares gives A and α."""
    slope, intercept = np.polyfit(np.log(x), np.log(y - E), 1)
    law = PowerLaw(float(E), float(np.exp(intercept)), float(-slope), 0.0)
    law.rmse = float(np.sqrt(np.mean((law(x) - y) ** 2)))
    return law


def fit_sweep(rows: list[dict], out: Path) -> str:
    """Fit L(N) and L(D) to a sweep's rows; write scaling.png and scaling.json to `out` and return the summary,
    which predicts the loss of a model twice the largest one at this compute."""
    sizes, tokens, losses = ([r[k] for r in rows] for k in ("non_embedding_params", "tokens_seen", "val_loss"))
    by_size, by_tokens = fit_power_law(sizes, losses), fit_power_law(tokens, losses)
    draw_fits([("N (non-embedding parameters)", sizes, losses, by_size), ("D (tokens seen)", tokens, losses, by_tokens)],
              out / "scaling.png")
    bigger = 2 * max(sizes)
    (out / "scaling.json").write_text(json.dumps({"N": vars(by_size), "D": vars(by_tokens), "predict_N": bigger,
                                                  "predicted_loss": float(by_size(bigger))}, indent=1) + "\n")
    return "\n".join([by_size.describe("N"), by_tokens.describe("D"), f"prediction at this compute: a model of "
                      f"N = {bigger:,} non-embedding parameters reaches val loss {by_size(bigger):.4f}"])


def draw_fits(points: list[tuple[str, list[float], list[float], PowerLaw]], path) -> None:
    """One log-log panel per fit: the sweep's points and the fitted curve, extended to twice the largest x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(points), figsize=(6 * len(points), 4))
    for ax, (label, x, y, law) in zip(np.atleast_1d(axes), points):
        grid = np.geomspace(min(x), 2 * max(x), 100)
        ax.plot(x, y, "o", label="sweep")
        ax.plot(grid, law(grid), "-", label=law.describe(label[0]))
        ax.set(xscale="log", xlabel=label, ylabel="best val loss", title=f"val loss against {label}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
