"""Recipe trials: val loss against training steps and seconds, for variants of a preset.

How shakespeare-char-cpu was tuned. Each trial trains the preset with some overrides
in this process and measures the whole val split at the given steps; the seconds
count training steps only (evals excluded), so trials compare recipes, not eval
settings. A trial is `NAME|{"section.key": value, ...}|[step, step, ...]`:

    python benchmarks/recipe_trials.py --data ../shared/data/tinyshakespeare.txt \\
        'adamw|{"train.optimizer": "adamw"}|[100,200,300]' \\
        'muon|{"train.optimizer": "muon", "train.muon_lr": 0.03}|[100,200,300]'
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from lmforge.config import Config
from lmforge.evaluation.perplexity import evaluate_ids
from lmforge.training.trainer import Trainer

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/tinyshakespeare.txt"


def trial(preset: str, text: str, overrides: dict, marks: list[int]) -> list[tuple[int, float, float]]:
    """(step, training seconds so far, val loss) at each mark."""
    cfg = Config.from_preset(preset).updated({**overrides, "train.progress": False})
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp) / "run", text=text)
        seconds, out = 0.0, []
        for mark in marks:
            start = time.perf_counter()
            while trainer.step < mark:
                trainer.train_step()
            seconds += time.perf_counter() - start
            val = evaluate_ids(trainer.model, trainer.tokenizer, trainer.val_ids, cfg.model.block_size, 256,
                               trainer.device)
            out.append((mark, round(seconds, 1), round(val.loss, 4)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trials", nargs="+", help="NAME|JSON overrides|JSON list of steps")
    ap.add_argument("--preset", default="shakespeare-char-cpu")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    args = ap.parse_args()
    text = Path(args.data).read_text(encoding="utf-8")
    print(f"| trial | overrides | step: training s, val loss |\n|---|---|---|  ({torch.get_num_threads()} threads)")
    for spec in args.trials:
        name, overrides, marks = spec.split("|")
        points = trial(args.preset, text, json.loads(overrides), json.loads(marks))
        cells = "; ".join(f"{step}: {s:.1f} s, {loss:.4f}" for step, s, loss in points)
        print(f"| {name} | `{overrides}` | {cells} |", flush=True)


if __name__ == "__main__":
    main()
