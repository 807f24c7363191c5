"""Muon: momentum, then orthogonalize the update, for the hidden weight matrices.

Muon (Keller Jordan, 2024) replaces a matrix's momentum M = U S Vᵀ by U Vᵀ, so every direction
of the update moves by the same amount (docs/05-training.md); the rest stays with AdamW (`optim.py`).

Why not `torch.optim.Muon`: it computes the same step (the first update from the same start agrees to a
cosine similarity of 0.9999 on shakespeare-char-cpu's matrices), but orthogonalizes in bfloat16 always and
one matrix at a time, where this one uses float32 on a CPU and one batched product per shape; on 2 CPU cores
ours takes 1.1-1.7x less time per step (`benchmarks/muon_torch.py`, `benchmarks/RESULTS.md`). The simpler
code would win a tie; this is not one, on the CPU recipes we ship.
"""

from __future__ import annotations

import torch


def orthogonalize(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximately U Vᵀ of g = U S Vᵀ (or of each matrix of a stack (..., m, n), in one batched product), by a
    quintic Newton–Schulz iteration. Its coefficients push singular values toward 1 fast rather than exactly
    (into about [0.7, 1.2]), which works as well in practice. bfloat16 on CUDA (cheap and good enough), float32
    elsewhere."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.to(torch.bfloat16 if g.is_cuda else torch.float32)
    tall = g.size(-2) > g.size(-1)
    if tall:
        x = x.mT  # iterate on the wide form: X Xᵀ is then the smaller product
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)  # spectral ≤ Frobenius norm ≤ 1: inside the basin
    single = x.dim() == 2
    if single:
        x = x.unsqueeze(0)
    for _ in range(steps):  # x ← a·x + (b·S + c·S²)·x with S = x xᵀ, each product fused with its sum
        s = x @ x.mT
        x = torch.baddbmm(x, torch.baddbmm(s, s, s, beta=b, alpha=c), x, beta=a)
    x = x.squeeze(0) if single else x
    return (x.mT if tall else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Muon for 2-D parameters: Nesterov momentum, orthogonalized, decoupled weight decay. Like torch's fused
    AdamW it takes `found_inf` (a 0-d tensor set as an attribute, as `GradScaler` does): where it is 1 the step
    leaves weights and momentum as they were, decided on the device, so a skipped step costs the host no sync."""

    _step_supports_amp_scaling = True  # GradScaler then passes `found_inf` instead of syncing to decide

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0, ns_steps: int = 5):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, ns_steps=ns_steps))
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() != 2:
                    raise ValueError(f"Muon takes 2-D matrices only, got a parameter of shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        assert getattr(self, "grad_scale", None) is None, "unscale the gradients (GradScaler.unscale_) before the step"
        skip = getattr(self, "found_inf", None)
        skip = None if skip is None else skip.bool()

        def commit(target: torch.Tensor, new: torch.Tensor) -> None:
            target.copy_(new if skip is None else torch.where(skip, target, new))

        for group in self.param_groups:
            lr, mu = group["lr"], group["momentum"]
            by_shape: dict[torch.Size, list[tuple[torch.Tensor, torch.Tensor]]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"].lerp(p.grad, 1 - mu)  # mu·buf + (1 - mu)·g
                update = p.grad.lerp(buf, mu)  # Nesterov: look one momentum step ahead
                commit(state["momentum_buffer"], buf)
                by_shape.setdefault(p.shape, []).append((p, update))
            # every layer has matrices of the same few shapes: orthogonalize each shape's stack at once
            for shape, pairs in by_shape.items():
                ortho = orthogonalize(torch.stack([u for _, u in pairs]), group["ns_steps"])
                # an m×n update with unit singular values has RMS 1/√max(m, n); rescale so tall
                # and wide matrices move alike
                scale = max(1.0, shape[0] / shape[1]) ** 0.5
                for (p, _), u in zip(pairs, ortho.unbind(0)):
                    commit(p, p.mul(1 - lr * group["weight_decay"]).add_(u, alpha=-lr * scale))
        return loss
