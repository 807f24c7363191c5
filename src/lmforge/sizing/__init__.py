"""Know before you train: parameters by part, FLOPs per token, training memory and what an eval costs.

`size(cfg, facts)` answers from the config alone (the model is built on PyTorch's
meta device, so nothing is allocated) and the data facts of `data_facts.py`;
`render` prints it as `lmforge size` and `lmforge train --dry-run` show it, and
`advice` says which setting would make an estimate that does not fit fit.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmforge.config import Config
from lmforge.sizing.data_facts import DataFacts
from lmforge.sizing.flops import EvalCost, Flops, eval_cost, model_flops
from lmforge.sizing.memory import Memory, estimate
from lmforge.sizing.params import NGramTables, Part, meta_model, ngram_bounds, ngram_fitted, parameter_parts, trainable


@dataclass
class Sizing:
    cfg: Config
    facts: DataFacts
    describe: str  # the model in a few words
    parts: list[Part]
    params: int
    trainable: int
    flops: Flops | None
    memory: Memory
    eval: EvalCost
    ngram: NGramTables | None = None

    @property
    def non_embedding(self) -> int:
        return sum(p.params for p in self.parts if p.name not in ("token embedding", "positions", "output head"))


def size(cfg: Config, facts: DataFacts, processes: int = 1) -> Sizing:
    model = meta_model(cfg.model, facts.vocab_size)
    parts = parameter_parts(model)
    flops = model_flops(model)
    ngram = None
    if model.fitted_by_counts:
        order = cfg.model.ngram_order
        ngram = (ngram_fitted(facts.weights, order, facts.vocab_size) if facts.weights
                 else ngram_bounds(order, facts.vocab_size, facts.train_tokens))
    return Sizing(cfg, facts, model.describe(), parts, sum(p.params for p in parts), trainable(model), flops,
                  estimate(cfg, model, processes), eval_cost(cfg, flops, facts.val_tokens, facts.train_tok_s), ngram)


def memory_of(cfg: Config, vocab_size: int, processes: int = 1) -> Memory:
    return estimate(cfg, meta_model(cfg.model, vocab_size), processes)


__all__ = ["DataFacts", "Sizing", "memory_of", "size"]
