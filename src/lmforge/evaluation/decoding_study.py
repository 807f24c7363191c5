"""The decoding study: the same model and prompts under several decoding strategies, each scored on diversity,
repetition, likelihood and length (docs/06-decoding.md). Words are whitespace-separated pieces of the decoded text,
so the numbers mean the same for character, word and BPE tokenizers.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lmforge.errors import LmforgeError
from lmforge.paths import utf8_lines

if TYPE_CHECKING:
    from lmforge.run import Run

DEFAULT_STRATEGIES = "greedy,temperature=0.7,temperature=1.0,temperature=1.3,top_k=10,top_p=0.9"
KEY_ALIASES = {"temperature": "temperature", "t": "temperature", "top_k": "top_k", "k": "top_k", "top_p": "top_p",
               "p": "top_p"}
REP_N = 4


@dataclass(frozen=True)
class Strategy:
    name: str
    greedy: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0


def parse_strategies(spec: str) -> list[Strategy]:
    """Strategies from "greedy,temperature=0.7,top_k=40,top_p=0.9,t=0.8+p=0.95" ('+' combines settings)."""
    strategies: dict[str, Strategy] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        s = Strategy(item, **({"greedy": True} if item == "greedy" else dict(map(_setting, item.split("+")))))
        if not 0 < s.temperature < math.inf or s.top_k < 0 or not 0 < s.top_p <= 1:  # `not`: nan fails too
            raise LmforgeError(f"--strategies: {item!r} needs a finite temperature > 0, top_k ≥ 0 and 0 < top_p ≤ 1 "
                               "(use 'greedy' for temperature 0)")
        if item in strategies:
            raise LmforgeError("--strategies names a strategy twice; list each once")
        strategies[item] = s
    if not strategies:
        raise LmforgeError("--strategies is empty; e.g. --strategies greedy,temperature=0.8,top_p=0.9")
    return list(strategies.values())


def _setting(part: str) -> tuple[str, float]:
    key, eq, value = part.partition("=")
    key = KEY_ALIASES.get(key.strip())
    if not eq or key is None:
        raise LmforgeError(f"--strategies: cannot read {part!r}; write e.g. "
                           "greedy,temperature=0.8,top_k=40,top_p=0.9 (join settings with '+': t=0.8+p=0.95)")
    try:
        return key, int(value) if key == "top_k" else float(value)
    except ValueError:
        raise LmforgeError(f"--strategies: {part!r} needs a number after '='") from None


def read_prompts(spec: str | Path) -> list[str]:
    """Prompts from a text file (one per line, blank lines skipped, a literal \\n stands for a newline), or from
    JSONL: a probe suite, or any lines with a "prompt" (or "prompts") key; a shipped suite's name (sotu) works too."""
    from lmforge.evaluation.probes import jsonl_values, resolve_suite

    path = resolve_suite(spec, "--prompts", "a text file with one prompt per line")
    if path.suffix == ".jsonl":
        found = [p for number, data in jsonl_values(path, "--prompts") for p in _prompts_of(data, f"{path}:{number}")]
    else:
        found = [line.replace("\\n", "\n") for line in utf8_lines(path, "--prompts") if line.strip()]
    prompts = list(dict.fromkeys(found))  # a suite may use one prompt in several probes
    if not prompts:
        raise LmforgeError(f"--prompts '{spec}' holds no prompts; write one prompt per line")
    return prompts


def _prompts_of(data: Any, where: str) -> list[str]:
    if isinstance(data, dict):
        data = [data["prompt"]] if "prompt" in data else data.get("prompts")
    found = [data] if isinstance(data, str) else data
    if not isinstance(found, list) or not found or not all(isinstance(p, str) and p for p in found):
        raise LmforgeError(f"{where}: needs a non-empty \"prompt\" string")
    return found


# ---------------------------------------------------------------------- metrics


def ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def distinct_n(texts: list[str], n: int) -> float:
    """Unique n-grams over all n-grams, pooled across `texts` (0 when there are none)."""
    grams = [g for t in texts for g in ngrams(t.split(), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(text: str, n: int = REP_N) -> float:
    """Fraction of the n-grams of one text that repeat an earlier n-gram of it."""
    grams = ngrams(text.split(), n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


@dataclass
class StrategyResult:
    strategy: str
    distinct_1: float
    distinct_2: float
    rep_4: float
    mean_logprob: float  # nats per generated token under the model
    length_chars: float
    length_words: float
    continuations: int
    example: str  # the first prompt's first continuation


COLUMNS = {"distinct_1": "distinct-1", "distinct_2": "distinct-2", "rep_4": "rep-4", "mean_logprob": "mean log-prob",
           "length_chars": "chars", "length_words": "words"}


# ---------------------------------------------------------------------- running


def sample_continuations(run: Run, prompt_ids: list[int], strategy: Strategy, max_new_tokens: int, samples: int,
                         generator: torch.Generator) -> list[list[int]]:
    """`samples` continuations (token ids) of one prompt, in one batch; greedy is computed once and repeated."""
    from lmforge.generation.decode import generate_ids

    batch = 1 if strategy.greedy else samples
    x = torch.tensor([prompt_ids] * batch, device=run.device)
    steps = [t.tolist() for t in generate_ids(run.model, x, max_new_tokens, greedy=strategy.greedy,
                                              temperature=strategy.temperature, top_k=strategy.top_k,
                                              top_p=strategy.top_p, generator=generator)]
    rows = [[step[b] for step in steps] for b in range(batch)]
    return rows * samples if strategy.greedy else rows


def run_study(run: Run, prompts: list[str], strategies: list[Strategy], max_new_tokens: int = 100,
              samples: int = 4, seed: int = 0) -> list[StrategyResult]:
    from lmforge.evaluation.scoring import continuation_logprobs

    if max_new_tokens < 1 or samples < 1:
        raise LmforgeError("--max-new-tokens and --samples must be at least 1")
    block = run.model.context_size or run.config.model.block_size
    encoded = [run.tokenizer.encode(prompt) for prompt in prompts]
    for prompt, ids in zip(prompts, encoded):
        if not ids:
            raise LmforgeError(f"the prompt {prompt!r} encodes to no tokens; give every prompt some text")
    results = []
    for strategy in strategies:
        generator = torch.Generator(device=run.device).manual_seed(seed)  # every strategy starts from the same seed
        texts, logprobs = [], []
        for ids in encoded:
            rows = sample_continuations(run, ids, strategy, max_new_tokens, samples, generator)
            scored: dict[tuple[int, ...], float] = {}  # greedy repeats one row: score it once
            for row in map(tuple, rows):
                if row not in scored:
                    # windows every block/4 tokens: each token sees 3/4 of the context (exact costs a pass per token)
                    scored[row] = float(continuation_logprobs(run.model, ids, list(row), block, run.device,
                                                              stride=max(1, block // 4)).mean())
                logprobs.append(scored[row])
                texts.append(run.tokenizer.decode(ids + list(row))[len(run.tokenizer.decode(ids)):])
        results.append(StrategyResult(
            strategy.name, distinct_1=distinct_n(texts, 1), distinct_2=distinct_n(texts, 2),
            rep_4=float(np.mean([repetition_rate(t) for t in texts])), mean_logprob=float(np.mean(logprobs)),
            length_chars=float(np.mean([len(t) for t in texts])),
            length_words=float(np.mean([len(t.split()) for t in texts])), continuations=len(texts), example=texts[0]))
    return results


# ---------------------------------------------------------------------- output


def table_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The header and formatted rows of the study table, from results as dicts (as saved in study.json)."""
    rows = [[str(r["strategy"])] + [f"{r[key]:.1f}" if key.startswith("length") else f"{r[key]:.3f}"
                                    for key in COLUMNS] for r in results]
    return ["strategy", *COLUMNS.values()], rows


def format_table(results: list[StrategyResult], markdown: bool = False) -> str:
    from lmforge.evaluation.report import markdown_table

    header, rows = table_rows([asdict(r) for r in results])
    if markdown:
        return markdown_table(header, rows)
    width = max(len(header[0]), *(len(r[0]) for r in rows)) + 2
    return "\n".join(row[0].ljust(width) + "".join(c.rjust(15) for c in row[1:]) for row in [header, *rows])


def plot_study(results: list[StrategyResult], path: Path) -> None:
    """A bar chart per metric, and the diversity/likelihood trade-off as a scatter."""
    from lmforge.evaluation.report import figure

    panels = {"distinct_1": "distinct-1 (higher: more varied)", "distinct_2": "distinct-2 (higher: more varied)",
              "rep_4": "rep-4 (higher: more loops)", "mean_logprob": "mean log-prob under the model (nats/token)"}
    with figure(path, len(panels) + 1, (22, 4)) as axes:
        for i, (ax, (key, title)) in enumerate(zip(axes, panels.items())):
            ax.bar(range(len(results)), [getattr(r, key) for r in results], color=f"C{i}")
            ax.set_xticks(range(len(results)), [r.strategy for r in results], rotation=30, ha="right")
            ax.set(title=title)
        axes[-1].scatter([r.distinct_2 for r in results], [r.mean_logprob for r in results])
        for r in results:
            axes[-1].annotate(r.strategy, (r.distinct_2, r.mean_logprob), fontsize=8, xytext=(3, 3),
                              textcoords="offset points")
        axes[-1].set(title="trade-off", xlabel="distinct-2", ylabel="mean log-prob")


def study(run: Run, run_dir: str | Path, prompts: list[str], strategies: list[Strategy], max_new_tokens: int = 100,
          samples: int = 4, seed: int = 0, out: str | Path | None = None) -> tuple[list[StrategyResult], dict, dict]:
    """`lmforge study`: `run_study`, saved as study.json, study.md and study.png in `out` (default RUN_DIR/evals,
    where `lmforge report` finds it); the results, the JSON and the paths written."""
    results = run_study(run, prompts, strategies, max_new_tokens, samples, seed)
    settings = {"prompts": len(prompts), "samples": samples, "max_new_tokens": max_new_tokens, "seed": seed}
    out_dir = Path(out) if out else Path(run_dir) / "evals"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "study.json", "markdown": out_dir / "study.md", "plot": out_dir / "study.png"}
    saved = {"settings": settings, "strategies": [asdict(r) for r in results]}
    paths["json"].write_text(json.dumps(saved, indent=1), encoding="utf-8")
    paths["markdown"].write_text(format_table(results, markdown=True) + "\n", encoding="utf-8")
    plot_study(results, paths["plot"])
    return results, {"run": str(run_dir), **saved}, paths
