"""The optimizers: AdamW with weight decay where it helps, or Muon for the hidden matrices.

A run holds a list of optimizers (one, or Muon plus AdamW); each parameter group
carries `lr_scale`, its peak rate relative to `--train.lr`, so one schedule drives
them all: `set_lr` writes `lr_at(step) * lr_scale` into every group.
"""

from __future__ import annotations

import torch
from torch import nn

from lmforge.config import TrainConfig
from lmforge.errors import LmforgeError


def hidden_matrices(model: nn.Module) -> list[nn.Parameter]:
    """The weight matrices that map hidden features to hidden features, in `model.parameters()` order.

    A parameter is one by its role, read from the module that owns it: the weight of an
    `nn.Linear` (or of Hugging Face's `Conv1D`, GPT-2's linear layer stored transposed,
    so the baseline model of the benchmarks is grouped as ours is), or an input or recurrent weight matrix (`weight_ih_l*`, `weight_hh_l*`,
    `weight_hr_l*`) of an `nn.RNN`/`nn.LSTM`/`nn.GRU`. Excluded: embeddings (`nn.Embedding`)
    and the output head the model declares (`LanguageModel.output_head`), tied or not: a
    head maps features to one logit per token, so it is a table of token vectors like the
    embedding, not a hidden matrix. Biases and norm gains are vectors and never qualify.
    """
    head = model.output_head() if hasattr(model, "output_head") else None
    excluded = {id(p) for p in head.parameters()} if head is not None else set()
    excluded |= {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    matrices = set()
    for module in model.modules():
        if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D":
            matrices.add(id(module.weight))
        elif isinstance(module, nn.RNNBase):  # nn.RNN, nn.LSTM, nn.GRU: weight_ih_l0, weight_hh_l0, ...
            matrices |= {id(p) for name, p in module.named_parameters(recurse=False) if name.startswith("weight_")}
    return [p for p in model.parameters()  # parameters() yields a tied weight once
            if p.requires_grad and p.dim() == 2 and id(p) in matrices and id(p) not in excluded]


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay the hidden matrices only (see `hidden_matrices`); everything else is not decayed.

    Biases and norm gains set scales and offsets, and embeddings are looked up
    sparsely (a rare token's row would shrink every step it is absent), so decay
    only pulls them toward zero for no gain. The output head, tied or untied, is a
    table of token vectors like the embedding and is treated the same way.
    """
    hidden = hidden_matrices(model)
    hidden_ids = {id(p) for p in hidden}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in hidden_ids]
    return [
        {"params": hidden, "weight_decay": weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]


def build_optimizers(model: nn.Module, cfg: TrainConfig, device: torch.device) -> list[torch.optim.Optimizer]:
    """AdamW for everything, or (`--train.optimizer muon`) Muon for the hidden matrices and AdamW for the rest.

    A group that would be empty is an error rather than a silent no-op: Muon (or weight
    decay) asked for on a model without hidden matrices would otherwise change nothing.
    """
    # One fused kernel for all parameters instead of a chain of small per-tensor ops:
    # several times faster on CPU, where each small op pays thread start-up costs.
    fused = device.type in ("cuda", "cpu")
    decay, no_decay = decay_groups(model, cfg.weight_decay)
    if not decay["params"] and not no_decay["params"]:
        raise LmforgeError(f"{type(model).__name__} has no trainable parameters to optimize")
    if not decay["params"] and cfg.optimizer == "muon":
        raise LmforgeError(f"--train.optimizer muon needs hidden weight matrices, and {type(model).__name__} has "
                           "none (only embeddings, output head, norms or biases); use --train.optimizer adamw")
    if not decay["params"] and cfg.weight_decay > 0:
        raise LmforgeError(f"--train.weight_decay {cfg.weight_decay} decays hidden weight matrices only, and "
                           f"{type(model).__name__} has none; use --train.weight_decay 0")
    adam_groups = [decay, no_decay]
    optimizers: list[torch.optim.Optimizer] = []
    if cfg.optimizer == "muon":
        from lmforge.training.muon import Muon

        muon_group = {**decay, "lr_scale": cfg.muon_lr / cfg.lr}
        optimizers.append(Muon([muon_group], lr=cfg.muon_lr, momentum=cfg.muon_momentum))
        adam_groups = [no_decay]
    for group in adam_groups:
        group.setdefault("lr_scale", 1.0)
    adam_groups = [g for g in adam_groups if g["params"]]
    if adam_groups:  # empty only when every parameter is a hidden matrix Muon took
        optimizers.append(torch.optim.AdamW(adam_groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                            fused=fused or None))
    return optimizers


def set_lr(optimizers: list[torch.optim.Optimizer], lr: float) -> None:
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
