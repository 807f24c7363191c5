"""Our Muon against `torch.optim.Muon`, side by side: val loss and training seconds.

`training/muon.py` keeps a hand-written Muon; this measures whether PyTorch's own
could replace it on the recipe we ship (shakespeare-char-cpu). Both use the same
groups, learning rates and momentum; PyTorch's with `adjust_lr_fn="original"` (the
same √max(1, m/n) scale as ours) and no weight decay (ours has none on this recipe).
The two differ in how they orthogonalize: PyTorch's always in bfloat16, one matrix at
a time; ours in float32 on a CPU, each stack of same-shaped matrices in one batched
product. The trials alternate (ours, torch, ours, torch) so a busy machine slows both.

    python benchmarks/muon_torch.py --steps 300 --repeats 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import lmforge.training.muon as muon_module
from recipe_trials import DEFAULT_DATA, trial

OURS = muon_module.Muon


def torch_muon(params, lr: float, momentum: float):
    return torch.optim.Muon(params, lr=lr, momentum=momentum, weight_decay=0.0, nesterov=True,
                            adjust_lr_fn="original")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="shakespeare-char-cpu")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    text = Path(args.data).read_text(encoding="utf-8")
    marks = [args.steps // 2, args.steps]
    print(f"| Muon | step: training s, val loss (nats/char, whole val split) |\n|---|---|  "
          f"({torch.get_num_threads()} threads, float32 model)")
    for _ in range(args.repeats):
        for name, cls in (("ours (training/muon.py)", OURS), ("torch.optim.Muon", torch_muon)):
            muon_module.Muon = cls
            points = trial(args.preset, text, {}, marks)
            print(f"| {name} | " + "; ".join(f"{s}: {sec:.1f} s, {loss:.4f}" for s, sec, loss in points) + " |",
                  flush=True)
    muon_module.Muon = OURS


if __name__ == "__main__":
    main()
