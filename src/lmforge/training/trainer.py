"""The training loop: next-token cross-entropy, AdamW, warmup + cosine, clipping, evals.

`train(cfg, out_dir)` is the whole story:

    text ─► tokenizer ─► ids ─► train/val split
    repeat: random windows ─► logits ─► loss ─► backward ─► clip ─► AdamW step
    every eval_interval steps: loss over the whole val split, a sample, and the
    best model so far (by val loss) saved to the run directory.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lmforge.config import Config
from lmforge.corpus import load_corpus
from lmforge.data.windows import check_long_enough, random_batch, split_ids
from lmforge.device import autocast, resolve_device, resolve_dtype
from lmforge.errors import LmforgeError
from lmforge.evaluation.perplexity import evaluate_ids, scored_bytes
from lmforge.generation.decode import generate_ids
from lmforge.models import build_model
from lmforge.models.base import LanguageModel, next_token_loss
from lmforge.tokenizers import Tokenizer, train_tokenizer
from lmforge.training.metrics import MetricsLog, elapsed_s, read_metrics
from lmforge.training.optim import build_optimizer
from lmforge.training.plots import draw_curves
from lmforge.training.run_dir import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, load_weights, save_weights
from lmforge.training.schedule import lr_at

MAX_BAD_STEPS = 5  # non-finite losses in a row before the run stops


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    best_step: int
    best_val_loss: float
    best_val_ppl: float
    best_val_bpb: float
    sample: str


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_out_dir(out_dir: Path) -> None:
    """Refuse to train over an earlier run: its model would be overwritten."""
    if (out_dir / MODEL_FILE).exists() or (out_dir / "metrics.jsonl").exists():
        raise LmforgeError(f"'{out_dir}' already holds a run; choose a new --out (or delete that folder)")


class Trainer:
    """Owns the model, optimizer and data of one run; `fit` runs the loop."""

    def __init__(self, cfg: Config, out_dir: Path, text: str | None = None, tokenizer: Tokenizer | None = None):
        cfg.validate()
        self.cfg, self.out_dir = cfg, Path(out_dir)
        check_out_dir(self.out_dir)
        if text is None:
            text, _ = load_corpus(cfg.data.path)
        self.tokenizer = tokenizer or train_tokenizer(cfg.data.tokenizer, text)
        ids = self.tokenizer.encode_array(text)
        self.train_ids, self.val_ids = split_ids(ids, cfg.data.val_fraction)
        check_long_enough(self.val_ids, cfg.model.block_size, "val split")
        check_long_enough(self.train_ids, cfg.model.block_size, "train split")
        self.val_bytes = scored_bytes(self.tokenizer, self.val_ids)
        cfg.model.vocab_size = self.tokenizer.vocab_size

        seed_everything(cfg.train.seed)
        self.device = resolve_device(cfg.train.device)
        self.dtype = resolve_dtype(cfg.train.dtype, self.device)
        self.model: LanguageModel = build_model(cfg.model).to(self.device)
        self.step_model = torch.compile(self.model) if cfg.train.compile else self.model
        self.optimizer = build_optimizer(self.model, cfg.train, self.device)
        self.batch_gen = torch.Generator().manual_seed(cfg.train.seed)
        self.sample_gen = torch.Generator(device=self.device).manual_seed(cfg.train.seed)
        self.step = 0
        self.best_val_loss, self.best_step = math.inf, -1
        self.best = None  # the eval record of the best step

    # ------------------------------------------------------------------ steps

    def train_step(self) -> tuple[float, float, float]:
        """One optimizer step; returns (loss, gradient norm before clipping, lr)."""
        t = self.cfg.train
        lr = lr_at(self.step, t)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y = random_batch(self.train_ids, t.batch_size, self.cfg.model.block_size, self.batch_gen, self.device)
        with autocast(self.device, self.dtype):
            loss = next_token_loss(self.step_model(x), y)
        loss.backward()
        max_norm = t.grad_clip if t.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        loss_value, norm_value = loss.item(), grad_norm.item()
        if math.isfinite(loss_value) and math.isfinite(norm_value):
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return loss_value, norm_value, lr

    def evaluate(self) -> dict[str, float]:
        """Val loss over the whole val split; train loss over a fixed set of train windows."""
        t, block = self.cfg.train, self.cfg.model.block_size
        amp = autocast(self.device, self.dtype)
        val = evaluate_ids(self.model, self.tokenizer, self.val_ids, block, t.eval_batch_size, self.device, amp,
                           n_bytes=self.val_bytes)
        # the same windows at every eval (fixed seed), so train loss is comparable across evals
        gen = torch.Generator().manual_seed(t.seed + 1)
        n_windows = max(1, t.eval_train_tokens // block)
        nats, count = 0.0, 0
        self.model.eval()
        with torch.inference_mode():
            for start in range(0, n_windows, t.eval_batch_size):
                x, y = random_batch(self.train_ids, min(t.eval_batch_size, n_windows - start), block, gen, self.device)
                with autocast(self.device, self.dtype):
                    nats += next_token_loss(self.model(x), y).item() * y.numel()
                count += y.numel()
        self.model.train()
        return {"train_loss": nats / count, "val_loss": val.loss, "val_ppl": val.perplexity, "val_bpb": val.bits_per_byte}

    def sample(self, max_new_tokens: int | None = None) -> str:
        s = self.cfg.sample
        prompt = self.tokenizer.encode(s.prompt) or [0]
        ids = torch.tensor([prompt], device=self.device)
        n = s.max_new_tokens if max_new_tokens is None else max_new_tokens
        out = [
            int(t)
            for t in generate_ids(self.model, ids, n, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
                                  greedy=s.temperature == 0, generator=self.sample_gen)
        ]
        return self.tokenizer.decode(prompt + out)

    # ------------------------------------------------------------------ loop

    def fit(self) -> TrainResult:
        cfg, t = self.cfg, self.cfg.train
        check_out_dir(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        cfg.save(self.out_dir / CONFIG_FILE)
        self.tokenizer.save(self.out_dir / TOKENIZER_FILE)
        log = MetricsLog(self.out_dir / "metrics.jsonl")
        tokens_per_step = t.batch_size * cfg.model.block_size
        log.write(
            "start", elapsed_s=round(elapsed_s(), 3), params=self.model.num_params(), device=str(self.device),
            dtype=str(self.dtype).removeprefix("torch."), vocab_size=self.tokenizer.vocab_size,
            train_tokens=len(self.train_ids), val_tokens=len(self.val_ids),
        )
        bar = tqdm(total=t.max_steps, disable=not t.progress, unit="step", dynamic_ncols=True, leave=False)
        loop_start = time.perf_counter()
        window_start, window_steps = loop_start, 0
        bad_in_row = 0
        stop_reason = "max_steps"
        try:
            while self.step < t.max_steps:
                loss, grad_norm, lr = self.train_step()
                window_steps += 1
                if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                    bad_in_row += 1
                    log.write("skip", step=self.step, loss=str(loss), grad_norm=str(grad_norm),
                              elapsed_s=round(elapsed_s(), 3))
                    if bad_in_row >= MAX_BAD_STEPS:
                        raise LmforgeError(
                            f"the loss was not finite for {MAX_BAD_STEPS} steps in a row (step {self.step}); "
                            f"the best model so far is kept in {self.out_dir}. Lower --train.lr (now {t.lr})"
                        )
                else:
                    bad_in_row = 0
                bar.update(1)
                if self.step % t.log_interval == 0 or self.step == t.max_steps:
                    now = time.perf_counter()
                    tok_s = window_steps * tokens_per_step / max(now - window_start, 1e-9)
                    window_start, window_steps = now, 0
                    log.write("train", step=self.step, elapsed_s=round(elapsed_s(), 3),
                              tokens_seen=self.step * tokens_per_step, loss=loss, lr=lr, grad_norm=grad_norm,
                              tokens_per_s=round(tok_s, 1))
                    bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tok_s:,.0f}", best_val=f"{self.best_val_loss:.3f}")
                out_of_time = t.max_seconds > 0 and time.perf_counter() - loop_start >= t.max_seconds
                if out_of_time:
                    stop_reason = "max_seconds"
                if self.step % t.eval_interval == 0 or self.step == t.max_steps or out_of_time:
                    self._eval_event(log, lr, tokens_per_step)
                if out_of_time:
                    break
        except KeyboardInterrupt:
            stop_reason = "interrupted"
        finally:
            bar.close()
            log.write("end", step=self.step, elapsed_s=round(elapsed_s(), 3), reason=stop_reason,
                      best_step=self.best_step, best_val_loss=self.best_val_loss)
            log.close()
        if self.best is None:
            raise LmforgeError(f"training stopped at step {self.step} before its first eval, so no model was saved; "
                               "train longer or lower --train.eval_interval")
        load_weights(self.model, self.out_dir / MODEL_FILE)  # the best model writes the final sample
        sample = self.sample()
        return TrainResult(self.out_dir, self.step, self.best_step, self.best["val_loss"], self.best["val_ppl"],
                           self.best["val_bpb"], sample)

    def _eval_event(self, log: MetricsLog, lr: float, tokens_per_step: int) -> None:
        losses = self.evaluate()
        improved = losses["val_loss"] < self.best_val_loss
        if improved:
            self.best_val_loss, self.best_step = losses["val_loss"], self.step
            save_weights(self.model, self.out_dir / MODEL_FILE)
        record = log.write("eval", step=self.step, elapsed_s=round(elapsed_s(), 3),
                           tokens_seen=self.step * tokens_per_step, **losses, lr=lr, best=improved)
        if improved:
            self.best = record
        if self.cfg.sample.max_new_tokens > 0:
            with open(self.out_dir / "samples.txt", "a", encoding="utf-8") as f:
                f.write(f"=== step {self.step} · val loss {losses['val_loss']:.4f}\n{self.sample()}\n\n")
        draw_curves(read_metrics(self.out_dir / "metrics.jsonl"), self.out_dir / "curves.png")


def train(cfg: Config, out_dir: str | Path) -> TrainResult:
    return Trainer(cfg, Path(out_dir)).fit()

