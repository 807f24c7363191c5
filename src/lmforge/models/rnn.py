"""Recurrent language models: Elman (tanh), LSTM and GRU cells.

    ids ─► embedding ─► dropout ─► n_layer recurrent layers ─► dropout ─► output head (tied) ─► logits

A recurrent layer reads one token at a time and keeps a fixed-size summary of
everything before it, its hidden state h (and for the LSTM a cell state c):

    elman:  h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    lstm:   input, forget and output gates and a candidate decide what c_t keeps
            and adds; h_t = o_t ⊙ tanh(c_t). Gradients flow through c_t's sum,
            so they survive many more steps than through Elman's repeated tanh.
    gru:    an update gate mixes h_{t-1} with a candidate; a reset gate decides how
            much of h_{t-1} the candidate sees. Two gates and no cell state.

The cells are PyTorch's (`nn.RNN`, `nn.LSTM`, `nn.GRU`), whose kernels loop over
time much faster than Python can; tests check the Elman layer against the
equation above. There is no context limit: the state is the context.

Training uses truncated backpropagation through time: consecutive windows
(data/consecutive.py) with the hidden state carried from one window to the next,
but detached, so gradients stop at the window edge while information does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from lmforge.config import ModelConfig
from lmforge.data.consecutive import ConsecutiveWindows
from lmforge.models.base import LanguageModel

CELLS = {"elman": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
CELL_NAMES = {"elman": "Elman", "lstm": "LSTM", "gru": "GRU"}

State = Any  # a tensor (n_layer, B, C) for elman and gru; a pair of them (h, c) for lstm


def detach_state(state: State) -> State:
    """The same values with no history: the next window's backward pass stops here."""
    if isinstance(state, (tuple, list)):
        return tuple(s.detach() for s in state)
    return state.detach()


def to_device(state: State, device: torch.device) -> State:
    if isinstance(state, (tuple, list)):
        return tuple(s.to(device) for s in state)
    return state.to(device)


class TruncatedBPTTFeed:
    """Consecutive windows with the hidden state carried across them (truncated BPTT).

    The state is kept per micro-batch of rows (`rows`), so gradient accumulation and
    several processes each carry their own rows' state. It restarts from zeros when a
    new pass over the streams begins, since row b then no longer continues the text
    row b read last.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator):
        self.windows = ConsecutiveWindows(ids, batch_size, block_size, generator)
        self.states: dict[int, State] = {}  # first row of a micro-batch → the state its rows carry

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y, new_pass = self.windows.next()
        if new_pass:
            self.states = {}
        return x, y

    def forward(self, model: nn.Module, x: torch.Tensor, rows: slice) -> torch.Tensor:
        state = self.states.get(rows.start)
        if state is not None:
            state = to_device(state, x.device)
        logits, state = model(x, state, return_state=True)
        self.states[rows.start] = detach_state(state)  # keep the values; the next window's gradients stop here
        return logits

    def state_dict(self) -> dict[str, Any]:
        return {"windows": self.windows.state_dict(), "states": dict(self.states)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.windows.load_state_dict(state["windows"])
            self.states = dict(state["states"])


class RNN(LanguageModel):
    family = "rnn"
    recurrent = True  # eval carries the state across consecutive windows, as training does

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        assert cfg.vocab_size > 0, "vocab_size must be set from the tokenizer before building a model"
        self.cfg = cfg
        C = cfg.n_embd  # embedding and hidden size are one, so the output head can be tied
        self.tok_emb = nn.Embedding(cfg.vocab_size, C)
        self.drop = nn.Dropout(cfg.dropout)
        # gates need their biases, so the cells always have them (--model.bias is for the transformer)
        self.cell = CELLS[cfg.rnn_cell](C, C, num_layers=cfg.n_layer, batch_first=True,
                                        dropout=cfg.dropout if cfg.n_layer > 1 else 0.0)
        self.head = nn.Linear(C, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.head.weight = self.tok_emb.weight
        self._init_weights()

    def _init_weights(self) -> None:
        # small embeddings: as the tied head they start every logit near zero (a near-uniform guess)
        nn.init.uniform_(self.tok_emb.weight, -0.1, 0.1)
        if not self.cfg.tie_weights:
            nn.init.uniform_(self.head.weight, -0.1, 0.1)
        if self.cfg.rnn_cell == "lstm":  # forget gate open at the start: remember by default (Jozefowicz et al., 2015)
            for name, p in self.cell.named_parameters():
                if name.startswith("bias_ih"):
                    C = self.cfg.n_embd
                    nn.init.zeros_(p)
                    nn.init.ones_(p[C : 2 * C])  # PyTorch's gate order: input, forget, cell, output

    def output_head(self) -> nn.Module:
        return self.head

    def scan(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Logits (B, T, V) for every position of `ids` (B, T), starting from `state` (None: zeros), and the final state."""
        x = self.drop(self.tok_emb(ids))  # (B, T, C)
        out, state = self.cell(x, state)  # (B, T, C), state after the last token
        return self.head(self.drop(out)), state

    def forward(self, ids: torch.Tensor, state: State | None = None,
                return_state: bool = False) -> torch.Tensor | tuple[torch.Tensor, State]:
        """Logits (B, T, V); with `return_state`, also the state after the last token (training carries it on)."""
        logits, state = self.scan(ids, state)
        return (logits, state) if return_state else logits

    def step(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """The hidden state is the whole context: feed only the new tokens."""
        logits, state = self.scan(ids, state)
        return logits[:, -1, :], state

    def reorder_state(self, state: State, rows: torch.Tensor) -> State:
        """Beam search moves rows around; the hidden state keeps the batch second: (n_layer, B, C)."""
        if isinstance(state, (tuple, list)):
            return tuple(s.index_select(1, rows) for s in state)
        return state.index_select(1, rows)

    def training_feed(self, ids: np.ndarray, batch_size: int, block_size: int,
                      generator: torch.Generator) -> TruncatedBPTTFeed:
        return TruncatedBPTTFeed(ids, batch_size, block_size, generator)

    def describe(self) -> str:
        return (f"{self.cfg.n_layer}-layer {CELL_NAMES[self.cfg.rnn_cell]} RNN ({self.cfg.n_embd} wide, "
                f"truncated BPTT over {self.cfg.block_size} tokens)")
