"""The optimizers: AdamW with weight decay where it helps, or Muon for the hidden matrices.

A run holds a list of optimizers (one, or Muon plus AdamW); each parameter group
carries `lr_scale`, its peak rate relative to `--train.lr`, so one schedule drives
them all: `set_lr` writes `lr_at(step) * lr_scale` into every group.
"""

from __future__ import annotations

import torch
from torch import nn

from lmforge.config import TrainConfig


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay the weight matrices of Linear layers only.

    Biases and norm gains set scales and offsets, and embeddings are looked up
    sparsely (a rare token's row would shrink every step it is absent), so decay
    only pulls them toward zero for no gain. A tied output head is the embedding,
    so it is not decayed either.
    """
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    decay, no_decay = [], []
    for p in model.parameters():  # parameters() yields a tied weight once
        if not p.requires_grad:
            continue
        (decay if id(p) in linear and id(p) not in embeddings and p.dim() >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizers(model: nn.Module, cfg: TrainConfig, device: torch.device) -> list[torch.optim.Optimizer]:
    """AdamW for everything, or (`--train.optimizer muon`) Muon for the decayed hidden matrices and AdamW for the rest."""
    # One fused kernel for all parameters instead of a chain of small per-tensor ops:
    # several times faster on CPU, where each small op pays thread start-up costs.
    fused = device.type in ("cuda", "cpu")
    decay, no_decay = decay_groups(model, cfg.weight_decay)
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
    optimizers.append(torch.optim.AdamW(adam_groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused or None))
    return optimizers


def set_lr(optimizers: list[torch.optim.Optimizer], lr: float) -> None:
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
