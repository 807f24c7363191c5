"""How a step changes the weights: the optimizers, the learning-rate schedule, precision switches.

Each parameter group carries `lr_scale`, its peak rate relative to `--train.lr`, so one schedule drives
AdamW and Muon alike. Schedules are pure functions of the step (a resumed run needs only the step): the
same linear warmup, then until decay_steps (0: max_steps), then min_lr:

    constant  lr            cosine  half a cosine from lr to min_lr
    linear    lr to min_lr  wsd     stable at lr, then linear to min_lr over the last decay_fraction
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lmforge.config import TrainConfig
from lmforge.errors import LmforgeError
from lmforge.training.muon import Muon


def hidden_matrices(model: nn.Module) -> list[nn.Parameter]:
    """The weight matrices that map hidden features to hidden features, in `model.parameters()` order: weights
    of `nn.Linear` (and Hugging Face's transposed `Conv1D`, for the benchmarks' GPT-2 baseline) and of
    `nn.RNN`/`nn.LSTM`/`nn.GRU`. Not the embeddings nor the output head (`LanguageModel.output_head`), tied or
    not: a head is a table of token vectors like the embedding."""
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
    """Decay the hidden matrices only. Biases and norm gains set scales and offsets, and embeddings (and the
    head, their like) are looked up sparsely (a rare token's row would shrink every step it is absent), so decay
    only pulls them toward zero for no gain."""
    hidden = hidden_matrices(model)
    hidden_ids = {id(p) for p in hidden}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in hidden_ids]
    return [{"params": hidden, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def build_optimizers(model: nn.Module, cfg: TrainConfig, device: torch.device) -> list[torch.optim.Optimizer]:
    """AdamW for everything, or (`--train.optimizer muon`) Muon for the hidden matrices and AdamW for the rest.
    Muon or weight decay asked of a model without hidden matrices is an error, not a silent no-op."""
    decay, no_decay = decay_groups(model, cfg.weight_decay)
    name = type(model).__name__
    if not decay["params"] and not no_decay["params"]:
        raise LmforgeError(f"{name} has no trainable parameters to optimize")
    if not decay["params"] and cfg.optimizer == "muon":
        raise LmforgeError(f"--train.optimizer muon needs hidden weight matrices, and {name} has none (only "
                           "embeddings, output head, norms or biases); use --train.optimizer adamw")
    if not decay["params"] and cfg.weight_decay > 0:
        raise LmforgeError(f"--train.weight_decay {cfg.weight_decay} decays hidden weight matrices only, and "
                           f"{name} has none; use --train.weight_decay 0")
    adam_groups = [decay, no_decay]
    optimizers: list[torch.optim.Optimizer] = []
    if cfg.optimizer == "muon":
        optimizers.append(Muon([{**decay, "lr_scale": cfg.muon_lr / cfg.lr}], lr=cfg.muon_lr,
                               momentum=cfg.muon_momentum))
        adam_groups = [no_decay]
    adam_groups = [{**g, "lr_scale": 1.0} for g in adam_groups if g["params"]]
    if adam_groups:  # empty only when every parameter is a hidden matrix Muon took
        # fused: one kernel for all parameters instead of a chain of small per-tensor ops, several times faster
        # on a CPU, where each small op pays thread start-up costs; it also skips a step on the device (found_inf)
        fused = device.type in ("cuda", "cpu")
        optimizers.append(torch.optim.AdamW(adam_groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                            fused=fused or None))
    return optimizers


def set_lr(optimizers: list[torch.optim.Optimizer], lr: float) -> None:
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """The learning rate of optimizer step `step` (0-based). Warmup starts above zero (step 0 gets
    lr / warmup_steps), so the first update already moves the weights."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    return cfg.min_lr + lr_factor(step, cfg) * (cfg.lr - cfg.min_lr)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Where the rate sits after warmup: 1 at lr, 0 at min_lr."""
    end = cfg.decay_steps or cfg.max_steps
    if cfg.schedule == "constant":
        return 1.0
    if step >= end:
        return 0.0
    if cfg.schedule == "wsd":
        decay_start = max(cfg.warmup_steps, end - round(cfg.decay_fraction * end))
        return 1.0 if step < decay_start else 1.0 - (step - decay_start) / max(1, end - decay_start)
    progress = (step - cfg.warmup_steps) / max(1, end - cfg.warmup_steps)  # 0 → 1
    if cfg.schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine


def set_tf32(enabled: bool) -> None:
    """TensorFloat-32 matmuls (10-bit mantissa, float32 range) on GPUs: several times faster than float32 and
    accurate enough for training."""
    torch.set_float32_matmul_precision("high" if enabled else "highest")


def should_compile(setting: str, device: torch.device) -> bool:
    """`auto` compiles on CUDA only: elsewhere compiling takes longer than it saves on small runs."""
    return device.type == "cuda" if setting == "auto" else setting == "true"


def grad_scaler(device: torch.device, dtype: torch.dtype) -> torch.amp.GradScaler:
    """Active for float16 only: its few exponent bits lose small gradients unless the loss is scaled up before
    backward (bfloat16 has float32's range); a pass-through otherwise."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
