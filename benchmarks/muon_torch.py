"""Our Muon against `torch.optim.Muon` on the hidden matrices of a shipped recipe: step time and the update.

`training/muon.py` keeps a hand-written Muon; this measures whether PyTorch's own could
replace it. Both get the same matrices (shakespeare-char-cpu's model), the same random
gradients, lr and momentum; PyTorch's with `adjust_lr_fn="original"` (the same
√max(1, m/n) scale as ours) and no weight decay (the recipe has none on Muon). Rows
alternate, so a busy machine slows both alike; the first update from the same start
says whether the two compute the same step.

    python benchmarks/muon_torch.py --steps 50 --repeats 3
"""

from __future__ import annotations

import argparse
import time

import torch

from lmforge.config import Config
from lmforge.models import build_model
from lmforge.training.muon import Muon
from lmforge.training.optim import hidden_matrices


def matrices(cfg: Config, seed: int = 0) -> list[torch.nn.Parameter]:
    torch.manual_seed(seed)
    return hidden_matrices(build_model(cfg.model))


def make(kind: str, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if kind == "ours":
        return Muon([{"params": params}], lr=0.03, momentum=0.95)
    return torch.optim.Muon([{"params": params}], lr=0.03, momentum=0.95, weight_decay=0.0,
                            adjust_lr_fn="original")


def step_ms(optimizer: torch.optim.Optimizer, params, grads, steps: int) -> float:
    for p, g in zip(params, grads):
        p.grad = g.clone()
    optimizer.step()  # warm-up: momentum buffers allocated
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="shakespeare-char-cpu")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cfg = Config.from_preset(args.preset)
    cfg.model.vocab_size = 65
    grads = [torch.randn_like(p) for p in matrices(cfg)]
    params = {kind: matrices(cfg) for kind in ("ours", "torch")}
    optimizers = {kind: make(kind, ps) for kind, ps in params.items()}
    print(f"{len(grads)} matrices {sorted({tuple(g.shape) for g in grads})}, {torch.get_num_threads()} threads")
    print("| repeat | ours (training/muon.py) ms/step | torch.optim.Muon ms/step | ratio |\n|---:|---:|---:|---:|")
    for r in range(args.repeats):
        ours, theirs = (step_ms(optimizers[k], params[k], grads, args.steps) for k in ("ours", "torch"))
        print(f"| {r + 1} | {ours:.2f} | {theirs:.2f} | {theirs / ours:.2f}× |", flush=True)
    a, b = matrices(cfg, 1), matrices(cfg, 1)
    start = [p.detach().clone() for p in a]
    for p, q, g in zip(a, b, grads):
        p.grad, q.grad = g.clone(), g.clone()
    make("ours", a).step()
    make("torch", b).step()
    with torch.no_grad():
        cos = min(float(torch.cosine_similarity((p - w).flatten(), (q - w).flatten(), dim=0))
                  for p, q, w in zip(a, b, start))
    print(f"first update from the same start: lowest cosine similarity over the matrices {cos:.4f}")


if __name__ == "__main__":
    main()
