"""The training loop: next-token cross-entropy, AdamW (or Muon), a schedule, clipping, evals, checkpoints.

`train(cfg, out_dir)` is the whole story:

    text ─► tokenizer ─► ids ─► train/val split
    repeat: batch (the model's training feed) ─► [micro-batches ─► logits ─► loss ─► backward] ─► clip ─► optimizer step
    every eval_interval steps: loss over the whole val split, a sample, and the
    best model so far (by val loss) saved to the run directory;
    every checkpoint: the whole resumable state in RUN_DIR/checkpoints/.

The same loop runs in one process or in many under torchrun (see distributed.py):
every rank draws the same global batch and keeps its own rows of it, so N ranks
compute what one process would, and only rank 0 writes anything.
"""

from __future__ import annotations

import hashlib
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lmforge.config import Config
from lmforge.data.documents import IGNORE_INDEX, DocumentFeed
from lmforge.data.training import load_training_data
from lmforge.device import autocast, resolve_dtype
from lmforge.errors import LmforgeError
from lmforge.generation.decode import generate_ids
from lmforge.models import build_model
from lmforge.models.base import LanguageModel, next_token_loss
from lmforge.tokenizers import Tokenizer, load_tokenizer
from lmforge.training import checkpoint, distributed, evals, flops
from lmforge.training.guards import EarlyStopping, OverfitWatch
from lmforge.training.metrics import MetricsLog, elapsed_s, read_metrics, rewind_metrics
from lmforge.training.optim import build_optimizers, set_lr
from lmforge.training.plots import draw_curves
from lmforge.training.precision import grad_scaler, set_tf32, should_compile
from lmforge.training.run_dir import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, load_weights, save_state_dict, save_weights
from lmforge.training.samples import append_sample, rewind_samples
from lmforge.training.schedule import lr_at

METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.txt"
CURVES_FILE = "curves.png"
CURVES_EVERY_S = 20.0  # a redraw costs about half a second of matplotlib: at most this often, and at the end


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    best_step: int
    best_val_loss: float
    best_val_ppl: float
    best_val_bpb: float
    sample: str
    stop_reason: str = "max_steps"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_out_dir(out_dir: Path) -> None:
    """Refuse to train over an earlier run: its model would be overwritten."""
    if (out_dir / MODEL_FILE).exists() or (out_dir / METRICS_FILE).exists():
        raise LmforgeError(f"'{out_dir}' already holds a run; choose a new --out (or delete that folder), "
                           f"or continue it with --resume {out_dir}")


def data_fingerprint(ids: np.ndarray) -> dict[str, Any]:
    """Enough to notice that a resumed run was given different text: the length and a hash of the first tokens."""
    head = np.ascontiguousarray(ids[: 1 << 20])
    return {"tokens": int(len(ids)), "head_blake2b": hashlib.blake2b(head.tobytes(), digest_size=16).hexdigest()}


class Trainer:
    """Owns the model, optimizers and data of one run; `fit` runs the loop.

    `resume=True` continues the run in `out_dir` from its newest checkpoint: the
    weights, optimizer moments, scaler, every RNG and the data position come back
    exactly, so the run ends bitwise where an uninterrupted one would.
    """

    def __init__(self, cfg: Config, out_dir: Path, text: str | None = None, tokenizer: Tokenizer | None = None,
                 resume: bool = False):
        self.out_dir, self.resuming = Path(out_dir), resume
        if not resume:
            check_out_dir(self.out_dir)
        elif tokenizer is None:
            tokenizer = load_tokenizer(self.out_dir / TOKENIZER_FILE)  # the run's own, not one retrained
        t = cfg.train
        self.dist = distributed.from_env()
        if t.batch_size % (t.grad_accum * self.dist.world_size):
            raise LmforgeError(f"--train.batch_size ({t.batch_size}) must be divisible by --train.grad_accum "
                               f"({t.grad_accum}) × the number of processes ({self.dist.world_size})")
        self.device = distributed.init(self.dist, t.device)  # before the data: rank 0 prepares it, the others wait
        # a text, a prepared directory, or any --data (prepared into RUN_DIR/data) → tokenizer, train/val ids
        data = load_training_data(cfg, text, tokenizer, self.out_dir, self.dist.is_main,
                                  lambda: distributed.barrier(self.dist))
        self.tokenizer, self.train_ids, self.val_ids, self.val_bytes = (
            data.tokenizer, data.train_ids, data.val_ids, data.val_bytes)
        self.documents = data.documents
        seed_everything(t.seed)
        self.dtype = resolve_dtype(t.dtype, self.device)
        set_tf32(t.tf32)
        self.model: LanguageModel = build_model(cfg.model, self.tokenizer.vocab_size).to(self.device)
        if self.model.fitted_by_counts and self.dist.enabled:
            raise LmforgeError(f"--model.family {cfg.model.family} is counted in one pass by one process; "
                               "run it without torchrun")
        # the config as run, saved as config.yaml: the tokenizer a prepared directory brought, and an n-gram's
        # whole training as one counting pass (`count_step`)
        self.cfg = cfg = cfg.updated({"data.tokenizer": self.tokenizer.kind,
                                      "train.max_steps": 1 if self.model.fitted_by_counts else t.max_steps})
        t = cfg.train
        if self.dist.enabled:
            torch.manual_seed(t.seed + self.dist.rank)  # the same initial weights, but each rank its own dropout
        self.parallel_model = distributed.wrap(self.model, self.dist, t.parallel, self.device)
        self.step_model = torch.compile(self.parallel_model) if should_compile(t.compile, self.device) else self.parallel_model
        # a count table has no parameters, so nothing to optimize
        self.optimizers = [] if self.model.fitted_by_counts else build_optimizers(self.model, t, self.device)
        self.scaler = grad_scaler(self.device, self.dtype)
        self.batch_gen = torch.Generator().manual_seed(t.seed)
        # random windows by default; an RNN reads consecutive windows and carries its hidden state across them;
        # --data.batches documents: whole documents, padded
        self.feed = self._training_feed()
        self.val_stretches = evals.val_stretches(len(self.val_ids), t.eval_tokens, cfg.model.block_size)
        self.sample_gen = torch.Generator(device=self.device).manual_seed(t.seed)
        self.step = 0
        self.tokens_seen = 0  # real targets trained on (padding excluded), over all ranks
        self.best_val_loss, self.best_step = math.inf, -1
        self.best: dict[str, Any] | None = None  # the eval record of the best step
        self.whole_val: dict[str, float] | None = None  # the best model on the whole val split, when evals sampled it
        self.early_stopping = EarlyStopping(t.patience)
        self.overfit_watch = OverfitWatch()
        self.elapsed_before = 0.0  # seconds spent by earlier processes of a resumed run
        self.log: MetricsLog | None = None
        self.tensorboard = None
        self.curves_drawn_at, self.curves_stale = time.perf_counter(), False
        if resume:
            self.restore(checkpoint.latest(self.out_dir))
            if self.step >= t.max_steps:
                raise LmforgeError(f"'{self.out_dir}' is already trained to step {self.step} (--train.max_steps "
                                   f"{t.max_steps}); raise --train.max_steps to train it further")

    def _training_feed(self):
        cfg, t = self.cfg, self.cfg.train
        if cfg.data.batches == "documents":
            eos = self.tokenizer.eos_id
            if not self.documents or eos is None:
                raise LmforgeError("--data.batches documents needs documents: --data as a folder, a glob, JSONL, "
                                   "a file cut with --separator, or a directory from `lmforge prepare` (one text has "
                                   "no document ends); pass one, or use --data.batches windows")
            return DocumentFeed(self.train_ids, eos, t.batch_size, cfg.model.block_size, self.batch_gen)
        return self.model.training_feed(self.train_ids, t.batch_size, cfg.model.block_size, self.batch_gen)

    # ------------------------------------------------------------------ steps

    def train_step(self) -> tuple[float, float, float]:
        """One optimizer step over `batch_size` sequences, split into `grad_accum` micro-batches (and across ranks).

        Returns (mean loss, gradient norm before clipping, lr). The loss is the mean over the real targets of the
        whole global batch: every token weighs the same whatever micro-batch or rank holds it, so padded documents
        of unequal lengths give the same step with any `grad_accum` and number of processes. A non-finite loss or
        gradient norm skips the update; the caller logs it and counts it.
        """
        if self.model.fitted_by_counts:
            return self.count_step()
        t = self.cfg.train
        lr = lr_at(self.step, t)
        set_lr(self.optimizers, lr)
        x, y, n_targets = self._next_batch()
        # each micro-batch's summed nats over the global batch's count of real targets, times the number of ranks
        # because DDP and FSDP average gradients over ranks: accumulated, that is the gradient of the per-token mean
        scale = self.dist.world_size / n_targets
        micro = x.size(0) // t.grad_accum
        first = self.dist.rank * x.size(0)  # this rank's first row in the global batch
        nats = torch.zeros((), device=self.device)
        for i in range(t.grad_accum):
            rows = slice(i * micro, (i + 1) * micro)
            with distributed.grad_sync(self.parallel_model, sync=i == t.grad_accum - 1):
                with autocast(self.device, self.dtype):
                    logits = self.feed.forward(self.step_model, x[rows], slice(first + rows.start, first + rows.stop))
                    micro_nats = next_token_loss(logits, y[rows], reduction="sum")
                self.scaler.scale(micro_nats * scale).backward()
            nats += micro_nats.detach()
        loss_value = distributed.total(nats, self.dist) / n_targets
        self.tokens_seen += n_targets
        for optimizer in self.optimizers:
            self.scaler.unscale_(optimizer)  # true gradients before clipping (a no-op without float16)
        max_norm = t.grad_clip if t.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        norm_value = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)  # FSDP: DTensor
        if self.scaler.is_enabled():
            for optimizer in self.optimizers:
                self.scaler.step(optimizer)  # skips the step by itself when a gradient overflowed
            self.scaler.update()
        elif math.isfinite(loss_value) and math.isfinite(norm_value):
            for optimizer in self.optimizers:
                optimizer.step()
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return loss_value, norm_value, lr

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """This rank's rows of the next global batch, and the global batch's count of real targets.

        Every rank draws the same `batch_size` windows from the same generator and keeps
        its own contiguous share, so the data a step sees does not depend on how many
        processes share it, and the generator's state is the whole data position. So
        every rank also counts the real (not padded) targets of all ranks without a collective.
        """
        share = self.cfg.train.batch_size // self.dist.world_size
        x, y = self.feed.next_batch()  # (batch_size, block_size) each, on the CPU
        n_targets = int((y != IGNORE_INDEX).sum())  # every target for windows; fewer for padded documents
        rows = slice(self.dist.rank * share, (self.dist.rank + 1) * share)
        x, y = x[rows], y[rows]
        if self.device.type == "cuda":
            x, y = x.pin_memory().to(self.device, non_blocking=True), y.pin_memory().to(self.device, non_blocking=True)
            return x, y, n_targets
        return x.to(self.device), y.to(self.device), n_targets

    def count_step(self) -> tuple[float, float, float]:
        """Fit a count-based model on the whole train split at once; its loss on one batch stands as the train loss."""
        self.model.fit_counts(self.train_ids)
        self.step += 1
        x, y, n_targets = self._next_batch()
        self.tokens_seen += n_targets
        with torch.inference_mode():
            loss = next_token_loss(self.model(x), y).item()
        return loss, 0.0, 0.0  # no gradient, no learning rate

    def evaluate(self) -> dict[str, float]:
        """Val loss over the whole val split (or the sample `train.eval_tokens` asks for); train loss over a fixed
        set of train windows (evals.py says why and how).

        Under torchrun every rank computes the same numbers (FSDP needs every rank in each forward).
        """
        t, block = self.cfg.train, self.cfg.model.block_size
        amp = autocast(self.device, self.dtype)
        val = evals.evaluate_val(self.model, self.tokenizer, self.val_ids, self.val_stretches, self.val_bytes, block,
                                 t.eval_batch_size, self.device, amp)
        train = evals.train_loss(self.model, self.train_ids, t.eval_train_tokens, block, t.eval_batch_size,
                                 t.seed + 1, self.device, amp)
        return {"train_loss": train, "val_loss": val.loss, "val_ppl": val.perplexity, "val_bpb": val.bits_per_byte,
                "val_tokens": val.tokens}

    def sample(self, max_new_tokens: int | None = None, model: LanguageModel | None = None) -> str:
        s = self.cfg.sample
        prompt = self.tokenizer.encode(s.prompt) or [0]
        ids = torch.tensor([prompt], device=self.device)
        n = s.max_new_tokens if max_new_tokens is None else max_new_tokens
        model = model or self.model
        with distributed.gathered(model):  # FSDP: the root's weights, which decoding uses outside forward
            out = [
                int(t)
                for t in generate_ids(model, ids, n, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
                                      greedy=s.temperature == 0, generator=self.sample_gen)
            ]
        return self.tokenizer.decode(prompt + out)

    # ------------------------------------------------------------------ loop

    def fit(self) -> TrainResult:
        t = self.cfg.train
        self._open_logs()
        per_token = flops.flops_per_token(self.model)
        peak = t.peak_flops or flops.peak_flops(self.device, self.dtype, t.tf32)
        self._log("resume" if self.resuming else "start", step=self.step, elapsed_s=self._elapsed(),
                  params=self.model.num_params(), device=str(self.device), dtype=str(self.dtype).removeprefix("torch."),
                  world_size=self.dist.world_size, vocab_size=self.tokenizer.vocab_size,
                  train_tokens=len(self.train_ids), val_tokens=len(self.val_ids), flops_per_token=per_token)
        bar = tqdm(total=t.max_steps, initial=self.step, disable=not (t.progress and self.dist.is_main), unit="step",
                   dynamic_ncols=True, leave=False)
        loop_start = time.perf_counter()
        window_start, window_tokens = loop_start, self.tokens_seen  # tokens/s counts real targets, not padding
        bad_in_row = 0
        stop_reason = "max_steps"
        try:
            while self.step < t.max_steps:
                loss, grad_norm, lr = self.train_step()
                bad_in_row = self._count_bad_steps(loss, grad_norm, bad_in_row)
                if bad_in_row >= t.max_bad_steps:
                    stop_reason = "non_finite"
                    raise self._diverged()
                bar.update(1)
                if self.step % t.log_interval == 0 or self.step == t.max_steps:
                    now = time.perf_counter()
                    tok_s = (self.tokens_seen - window_tokens) / max(now - window_start, 1e-9)
                    window_start, window_tokens = now, self.tokens_seen
                    utilization = flops.mfu(tok_s, per_token, peak, self.dist.world_size)
                    self._log("train", step=self.step, elapsed_s=self._elapsed(), tokens_seen=self.tokens_seen,
                              loss=loss, lr=lr, grad_norm=grad_norm, tokens_per_s=round(tok_s, 1),
                              mfu=None if utilization is None else round(utilization, 4))
                    bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tok_s:,.0f}", best_val=f"{self.best_val_loss:.3f}")
                out_of_time = t.max_seconds > 0 and distributed.any_rank(  # ranks must agree on when to stop
                    time.perf_counter() - loop_start >= t.max_seconds, self.dist, self.device)
                paused = time.perf_counter()  # eval, sampling and checkpoints: not training, so not in tokens/s
                is_eval = self.step % t.eval_interval == 0 or self.step == t.max_steps or out_of_time
                stop_early = self._eval_event(lr) if is_eval else False
                if out_of_time or stop_early:
                    stop_reason = "max_seconds" if out_of_time else "early_stop"
                due = is_eval if t.checkpoint_interval == 0 else self.step % t.checkpoint_interval == 0
                stopping = self.step == t.max_steps or stop_reason != "max_steps"
                if bad_in_row == 0 and (due or stopping):  # never checkpoint in the middle of a run of bad steps
                    self.save_checkpoint()
                window_start += time.perf_counter() - paused
                if stop_reason != "max_steps":
                    break
            self.whole_val = self._score_best_on_whole_val()
        except KeyboardInterrupt:
            stop_reason = "interrupted"
        finally:
            bar.close()
            self._log("end", step=self.step, elapsed_s=self._elapsed(), reason=stop_reason, best_step=self.best_step,
                      best_val_loss=self.best_val_loss, whole_val=self.whole_val)
            self._close_logs()
            if self.curves_stale:
                self._draw_curves(force=True)
            distributed.close(self.dist)
        if self.best is None:
            raise LmforgeError(f"training stopped at step {self.step} before its first eval, so no model was saved; "
                               "train longer or lower --train.eval_interval")
        sample = self._final_sample()
        best = self.whole_val or self.best
        return TrainResult(self.out_dir, self.step, self.best_step, best["val_loss"], best["val_ppl"], best["val_bpb"],
                           sample, stop_reason)

    def _count_bad_steps(self, loss: float, grad_norm: float, bad_in_row: int) -> int:
        """Log a skipped step; return how many bad steps have come in a row."""
        if math.isfinite(loss) and math.isfinite(grad_norm):
            return 0
        self._log("skip", step=self.step, loss=str(loss), grad_norm=str(grad_norm), elapsed_s=self._elapsed(),
                  reason="non-finite loss" if not math.isfinite(loss) else "non-finite gradient")
        if self.scaler.is_enabled() and math.isfinite(loss):
            return bad_in_row  # a float16 overflow: the scaler lowers its scale; not a sign of divergence
        return bad_in_row + 1

    def _diverged(self) -> LmforgeError:
        t = self.cfg.train
        last = checkpoint.list_checkpoints(self.out_dir)
        kept = f"the last good checkpoint (step {last[-1][0]}) is intact" if last else "no checkpoint was saved yet"
        return LmforgeError(f"the loss was not finite for {t.max_bad_steps} steps in a row (step {self.step}); {kept} "
                            f"in {self.out_dir}; lower --train.lr (now {t.lr}) and continue with --resume {self.out_dir}")

    def _eval_event(self, lr: float) -> bool:
        """Evaluate, keep the best model, sample, redraw the curves; True when early stopping says stop."""
        losses = self.evaluate()
        improved = losses["val_loss"] < self.best_val_loss
        if improved:
            self.best_val_loss, self.best_step = losses["val_loss"], self.step
            self._save_best()
        record = self._log("eval", step=self.step, elapsed_s=self._elapsed(), tokens_seen=self.tokens_seen,
                           **losses, lr=lr, best=improved)
        if improved:
            self.best = record
        warning = self.overfit_watch.update(losses["train_loss"], losses["val_loss"], self.best_step, self.best_val_loss)
        if warning:
            self._log("warning", step=self.step, message=warning)
            if self.dist.is_main:
                tqdm.write(f"warning: {warning}", file=sys.stderr)
        if self.cfg.sample.max_new_tokens > 0:
            text = self.sample()  # every rank samples: under FSDP each forward needs them all
            if self.dist.is_main:
                append_sample(self.out_dir / SAMPLES_FILE, self.step, losses["val_loss"], text)
        self._draw_curves()
        return self.early_stopping.update(improved)

    def _draw_curves(self, force: bool = False) -> None:
        """Redraw curves.png from metrics.jsonl, unless it was drawn less than CURVES_EVERY_S ago (then later)."""
        if not self.dist.is_main:
            return
        if not force and time.perf_counter() - self.curves_drawn_at < CURVES_EVERY_S:
            self.curves_stale = True
            return
        draw_curves(read_metrics(self.out_dir / METRICS_FILE), self.out_dir / CURVES_FILE)
        self.curves_drawn_at, self.curves_stale = time.perf_counter(), False

    def _best_model(self) -> LanguageModel:
        """The best step's weights (model.safetensors), for rank 0; a plain copy when distributed (the training
        model may be sharded, and the other ranks may have stopped)."""
        model = build_model(self.cfg.model, self.tokenizer.vocab_size).to(self.device) if self.dist.enabled else self.model
        load_weights(model, self.out_dir / MODEL_FILE)
        return model

    def _score_best_on_whole_val(self) -> dict[str, float] | None:
        """The best model on the whole val split, when evals scored a sample of it (rank 0); else None."""
        if self.val_stretches is None or self.best is None or not self.dist.is_main:
            return None
        t = self.cfg.train
        val = evals.evaluate_val(self._best_model(), self.tokenizer, self.val_ids, None, self.val_bytes,
                                 self.cfg.model.block_size, t.eval_batch_size, self.device,
                                 autocast(self.device, self.dtype))
        return {"step": self.best_step, "val_loss": val.loss, "val_ppl": val.perplexity, "val_bpb": val.bits_per_byte,
                "val_tokens": val.tokens}

    def _final_sample(self) -> str:
        """A sample from the best model (model.safetensors); rank 0 only."""
        return self.sample(model=self._best_model()) if self.dist.is_main else ""

    # ------------------------------------------------------------------ run directory and logs

    def _elapsed(self) -> float:
        return round(self.elapsed_before + elapsed_s(), 3)

    def _open_logs(self) -> None:
        if not self.dist.is_main:
            return
        if self.resuming:  # forget what a crashed process logged after the checkpoint it will redo
            rewind_metrics(self.out_dir / METRICS_FILE, self.step)
            rewind_samples(self.out_dir / SAMPLES_FILE, self.step)
        else:
            check_out_dir(self.out_dir)
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.tokenizer.save(self.out_dir / TOKENIZER_FILE)
        self.cfg.save(self.out_dir / CONFIG_FILE)
        self.log = MetricsLog(self.out_dir / METRICS_FILE)
        if self.cfg.train.tensorboard:
            from lmforge.training.tensorboard_log import TensorBoardLog

            self.tensorboard = TensorBoardLog(self.out_dir / "tensorboard", purge_step=self.step + 1 if self.resuming else None)

    def _log(self, event: str, **values: Any) -> dict[str, Any]:
        """The record of one event; written (to metrics.jsonl and TensorBoard) by rank 0 only."""
        record = {"event": event, **values}
        if self.log is not None:
            self.log.write(event, **values)
        if self.tensorboard is not None:
            self.tensorboard.write(record)
        return record

    def _close_logs(self) -> None:
        if self.log is not None:
            self.log.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        self.log = self.tensorboard = None

    def _save_best(self) -> None:
        if not self.dist.enabled:
            save_weights(self.model, self.out_dir / MODEL_FILE)
            return
        state = distributed.model_state(self.model)  # a collective under FSDP; the full weights land on rank 0
        if self.dist.is_main:
            save_state_dict(state, self.model, self.out_dir / MODEL_FILE)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """The loop's own state: step, best so far, guards, the data position and the sampling generator.

        A collective under torchrun: the feed's state is gathered from every rank.
        """
        return {
            "step": self.step, "tokens_seen": self.tokens_seen, "elapsed_s": self.elapsed_before + elapsed_s(), "best_val_loss": self.best_val_loss,
            "best_step": self.best_step, "best": self.best, "early_stopping": self.early_stopping.state_dict(),
            "overfit_watch": self.overfit_watch.state_dict(), "batch_gen": self.batch_gen.get_state(),
            "sample_gen": self.sample_gen.get_state(), "data": data_fingerprint(self.train_ids),
            "feed": distributed.gather(self.feed.state_dict(), self.dist),  # each rank's (an RNN's rows' state)
            "world_size": self.dist.world_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["data"] != data_fingerprint(self.train_ids):
            raise LmforgeError(f"the training text differs from the one the checkpoint in {self.out_dir} was trained on "
                               f"({state['data']['tokens']:,} train tokens then, {len(self.train_ids):,} now); "
                               "resume with the same --data")
        self.step, self.elapsed_before = state["step"], state["elapsed_s"]
        # a checkpoint from before tokens_seen was saved: steps × batch, exact for windows (no padding)
        self.tokens_seen = state.get("tokens_seen", self.step * self.cfg.train.batch_size * self.cfg.model.block_size)
        self.best_val_loss, self.best_step, self.best = state["best_val_loss"], state["best_step"], state["best"]
        self.early_stopping.load_state_dict(state["early_stopping"])
        self.overfit_watch.load_state_dict(state["overfit_watch"])
        self.batch_gen.set_state(state["batch_gen"])
        self.sample_gen.set_state(state["sample_gen"])
        feed = state.get("feed", [])
        self.feed.load_state_dict(feed if isinstance(feed, list) else [feed])  # a dict: saved by an older lmforge

    def save_checkpoint(self) -> None:
        """Write the whole resumable state; collectives on every rank, the file by rank 0."""
        if self.model.fitted_by_counts:  # one counting pass leaves nothing to resume: model.safetensors is the run
            return
        state = {
            "format": checkpoint.FORMAT,
            "model": distributed.model_state(self.model),
            "optimizers": distributed.optimizer_state(self.model, self.optimizers),
            "scaler": self.scaler.state_dict(),
            "rng": distributed.gather(checkpoint.rng_state(self.device), self.dist),  # each rank's, for its dropout
            "trainer": self.state_dict(),
        }
        if self.dist.is_main:
            info = {"best_step": self.best_step, "best_val_loss": self.best_val_loss if self.best else None}
            checkpoint.save(self.out_dir, self.step, state, info)
            checkpoint.prune(self.out_dir, self.cfg.train.keep_checkpoints, self.best_step)

    def restore(self, meta_path: Path) -> None:
        """Load a checkpoint: rank 0 reads and verifies it, then broadcasts it to the other ranks."""
        state: dict[str, Any] = {"model": {}, "optimizers": {}}
        if self.dist.is_main:
            _, state = checkpoint.load(meta_path)
        small = distributed.broadcast({k: state.get(k) for k in ("scaler", "rng", "trainer")}, self.dist)
        distributed.load_model_state(self.model, state["model"], self.dist)
        distributed.load_optimizer_state(self.model, self.optimizers, state["optimizers"], self.dist)
        if small["scaler"]:
            self.scaler.load_state_dict(small["scaler"])
        self.load_state_dict(small["trainer"])
        rngs = small["rng"]
        if self.dist.rank < len(rngs):
            checkpoint.set_rng_state(rngs[self.dist.rank], self.device)
        else:  # more ranks than when saved: a fresh dropout stream for the new ones
            torch.manual_seed(self.cfg.train.seed + self.dist.rank + self.step)


def train(cfg: Config, out_dir: str | Path, resume: bool = False) -> TrainResult:
    return Trainer(cfg, Path(out_dir), resume=resume).fit()
