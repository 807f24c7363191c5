"""Evaluating a trained run on a text file: the work behind `lmforge eval`,
shared with `regress` and `report` so all three measure a file the same way."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lmforge.run import Run


def evaluate_run(run: Run, data: str | Path, stride: int | None = None, batch_size: int = 64) -> dict[str, Any]:
    """Loss, perplexity and bits per byte of `run` on the file `data`, as a JSON-ready dict.

    `unknown_chars` counts characters the tokenizer had to replace (they lower
    the result's meaning; the CLI warns about them). `compare` scores its val text
    with the same `evaluate_text`, so the two agree on the same model and text.
    """
    from lmforge.corpus import read_text
    from lmforge.device import autocast, resolve_dtype
    from lmforge.errors import LmforgeError
    from lmforge.evaluation.perplexity import evaluate_text

    if batch_size < 1:
        raise LmforgeError(f"--batch-size must be at least 1, not {batch_size}")
    text = read_text(data)
    unknown = getattr(run.tokenizer, "unknown_count", lambda _: 0)(text)
    amp = autocast(run.device, resolve_dtype(run.config.train.dtype, run.device))
    result = evaluate_text(run.model, run.tokenizer, text, run.config.model.block_size, batch_size, run.device, amp,
                           stride=stride)
    return {"run": str(run.path), "data": str(data), "tokenizer": run.tokenizer.kind, **result.to_dict(),
            "unknown_chars": unknown}


def evaluate_file(run_dir: str | Path, data: str | Path, stride: int | None = None, batch_size: int = 64,
                  device: str = "auto") -> dict[str, Any]:
    import lmforge

    return evaluate_run(lmforge.load(run_dir, device=device), data, stride, batch_size)


def eval_save_path(run_dir: str | Path, data: str | Path) -> Path:
    """Where `lmforge eval --save` keeps a result, for `lmforge report` to find: RUN_DIR/evals/eval-NAME.json."""
    return Path(run_dir) / "evals" / f"eval-{Path(data).stem}.json"
