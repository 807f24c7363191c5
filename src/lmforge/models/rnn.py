"""Recurrent language models: Elman (tanh), LSTM and GRU cells (docs/03-embeddings-and-rnns.md).

    ids ─► embedding ─► dropout ─► n_layer recurrent layers ─► dropout ─► output head (tied) ─► logits

The cells are PyTorch's (`nn.RNN`, `nn.LSTM`, `nn.GRU`), whose kernels loop over time much faster than
Python can; tests check the Elman layer against its equation. The state is the context: no limit.
Training is truncated BPTT: consecutive windows (`ConsecutiveWindows`, data/batches.py), the hidden state
carried across them detached, so gradients stop at the window edge while information does not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from lmforge.config import ModelConfig
from lmforge.data.batches import ConsecutiveWindows
from lmforge.errors import LmforgeError
from lmforge.models.base import LanguageModel

CELLS = {"elman": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
CELL_NAMES = {"elman": "Elman", "lstm": "LSTM", "gru": "GRU"}

State = Any  # a tensor (n_layer, B, C) for elman and gru; a pair of them (h, c) for lstm


def map_state(state: State, fn: Callable[[torch.Tensor], torch.Tensor]) -> State:
    """`fn` applied to each tensor of a state (the LSTM's is a pair)."""
    return tuple(fn(s) for s in state) if isinstance(state, (tuple, list)) else fn(state)


def join_rows(states: list[State]) -> State:
    """The states of consecutive groups of rows as one state; rows are dim 1 of (n_layer, B, C)."""
    if isinstance(states[0], (tuple, list)):
        return tuple(torch.cat(parts, dim=1) for parts in zip(*states))
    return torch.cat(states, dim=1)


class TruncatedBPTTFeed:
    """Consecutive windows with the hidden state carried across them (truncated BPTT), from zeros each pass.

    The state is kept per micro-batch, keyed by its first row in the global batch, so gradient accumulation and
    several processes each carry their own rows'. A checkpoint joins every process's rows into one state of the
    whole batch, so a run resumes with any number of processes and `grad_accum`."""

    def __init__(self, ids: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator):
        self.windows = ConsecutiveWindows(ids, batch_size, block_size, generator)
        self.states: dict[int, State] = {}  # first global row of a micro-batch → the state its rows carry
        self.resumed: State | None = None  # every row's state from a checkpoint, until the next pass starts

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y, new_pass = self.windows.next()
        if new_pass:
            self.states, self.resumed = {}, None
        return x, y

    def forward(self, model: nn.Module, x: torch.Tensor, rows: slice) -> torch.Tensor:
        state = self.states.get(rows.start)
        if state is None and self.resumed is not None:  # the first step after a resume
            state = map_state(self.resumed, lambda s: s[:, rows].contiguous())
        if state is not None:
            state = map_state(state, lambda s: s.to(x.device))
        logits, state = model(x, state, return_state=True)
        # keep the values, detached: the next window's gradients stop here
        self.states[rows.start] = map_state(state, torch.Tensor.detach)
        return logits

    def state_dict(self) -> dict[str, Any]:
        """The data position (the same on every process) and this process's rows' states, on the CPU."""
        states = {start: map_state(s, torch.Tensor.cpu) for start, s in self.states.items()}
        return {"windows": self.windows.state_dict(), "states": states}

    def load_state_dict(self, parts: list[dict[str, Any]]) -> None:
        """Every process's `state_dict`, as saved: the rows of all of them make the whole batch's state."""
        parts = [part for part in parts if part]
        if not parts:
            return
        self.windows.load_state_dict(parts[0]["windows"])
        states = {start: state for part in parts for start, state in part["states"].items()}
        self.states, self.resumed = {}, None
        if not states:  # saved before the first step of a pass: it starts from zeros anyway
            return
        self.resumed = join_rows([states[start] for start in sorted(states)])
        n_rows = (self.resumed[0] if isinstance(self.resumed, tuple) else self.resumed).size(1)
        if n_rows != self.windows.batch_size:
            raise LmforgeError(f"the checkpoint holds the RNN hidden state of {n_rows} rows, not --train.batch_size "
                               f"{self.windows.batch_size} (another batch size, or an older lmforge under torchrun); "
                               "resume with the batch size it was trained with, or start a new run")


class RNN(LanguageModel):
    family = "rnn"
    recurrent = True  # eval carries the state across consecutive windows, as training does

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg, self.vocab_size = cfg, vocab_size
        C = cfg.n_embd  # embedding and hidden size are one, so the output head can be tied
        self.tok_emb = nn.Embedding(vocab_size, C)
        self.drop = nn.Dropout(cfg.dropout)
        # gates need their biases, so the cells always have them (--model.bias is for the transformer)
        self.cell = CELLS[cfg.rnn_cell](C, C, num_layers=cfg.n_layer, batch_first=True,
                                        dropout=cfg.dropout if cfg.n_layer > 1 else 0.0)
        self.head = nn.Linear(C, vocab_size, bias=False)
        if cfg.tie_weights:
            self.head.weight = self.tok_emb.weight
        # small embeddings: as the tied head they start every logit near zero (a near-uniform guess)
        nn.init.uniform_(self.tok_emb.weight, -0.1, 0.1)
        if not cfg.tie_weights:
            nn.init.uniform_(self.head.weight, -0.1, 0.1)
        if cfg.rnn_cell == "lstm":  # forget gate open at the start: remember by default (Jozefowicz et al., 2015)
            for name, p in self.cell.named_parameters():
                if name.startswith("bias_ih"):
                    nn.init.zeros_(p)
                    nn.init.ones_(p[C : 2 * C])  # PyTorch's gate order: input, forget, cell, output

    def output_head(self) -> nn.Module:
        return self.head

    def forward(self, ids: torch.Tensor, state: State | None = None,
                return_state: bool = False) -> torch.Tensor | tuple[torch.Tensor, State]:
        """Logits (B, T, V) from `state` (None: zeros); with `return_state`, also the state after the last token."""
        out, state = self.cell(self.drop(self.tok_emb(ids)), state)  # (B, T, C), state after the last token
        logits = self.head(self.drop(out))
        return (logits, state) if return_state else logits

    def step(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """The hidden state is the whole context: feed only the new tokens."""
        logits, state = self(ids, state, return_state=True)
        return logits[:, -1, :], state

    def reorder_state(self, state: State, rows: torch.Tensor) -> State:
        """Beam search moves rows around; the hidden state keeps the batch second: (n_layer, B, C)."""
        return map_state(state, lambda s: s.index_select(1, rows))

    def training_feed(self, ids: np.ndarray, batch_size: int, block_size: int,
                      generator: torch.Generator) -> TruncatedBPTTFeed:
        return TruncatedBPTTFeed(ids, batch_size, block_size, generator)

    def describe(self) -> str:
        return (f"{self.cfg.n_layer}-layer {CELL_NAMES[self.cfg.rnn_cell]} RNN ({self.cfg.n_embd} wide, "
                f"truncated BPTT over {self.cfg.block_size} tokens)")
