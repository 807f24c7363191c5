"""What a resumable checkpoint costs, next to the training step it protects.

For each preset: parameters, checkpoint size, the median time of a training step,
of writing a checkpoint (state dicts, torch.save through a SHA-256, fsync, rename,
the .json commit mark) and of restoring one (checksum, weights_only load, loading
model, optimizer, scaler and RNG state). All in one process, side by side.

    python benchmarks/checkpoint_cost.py --data ../shared/data/tinyshakespeare.txt --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from lmforge.config import Config
from lmforge.training import Trainer, checkpoint


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(preset: str, data: str, repeats: int, folder: Path) -> dict:
    cfg = Config.from_preset(preset).updated({"data.path": data, "train.progress": False})
    trainer = Trainer(cfg, folder / preset)
    trainer.train_step()  # warm up: lazy allocations, optimizer state
    step_ms = median_ms(lambda: trainer.train_step().loss, repeats)  # .loss waits for the device
    save_ms = median_ms(trainer.save_checkpoint, repeats)
    meta = checkpoint.latest(folder / preset)
    restore_ms = median_ms(lambda: trainer.restore(meta), repeats)
    size = meta.with_suffix(".pt").stat().st_size
    return {"preset": preset, "params": trainer.model.num_params(), "mb": size / 2**20, "step": step_ms,
            "save": save_ms, "restore": restore_ms}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/tinyshakespeare.txt"))
    parser.add_argument("--presets", default="tiny,shakespeare-char-cpu,default")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'preset':<22}{'params':>10}{'ckpt MB':>9}{'step ms':>9}{'save ms':>9}{'restore ms':>11}{'save/step':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            r = measure(preset, args.data, args.repeats, Path(tmp))
            print(f"{r['preset']:<22}{r['params']:>10,}{r['mb']:>9.2f}{r['step']:>9.1f}{r['save']:>9.1f}"
                  f"{r['restore']:>11.1f}{r['save'] / r['step']:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
