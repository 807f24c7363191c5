"""The training loop: next-token cross-entropy, AdamW (or Muon), a schedule, clipping, evals, checkpoints.

    repeat: batch ─► [micro-batches ─► logits ─► loss ─► backward] ─► clip ─► optimizer step
    every eval_interval steps: val loss, a sample, the best model saved; every checkpoint: the resumable state

Under torchrun every rank draws the same global batch and keeps its own rows; only rank 0 writes.
A step leaves its loss and gradient norm on the device (`StepStats`) and skips a non-finite update
there, so a GPU runs ahead of the host: pending steps are read in one sync at logs, evals and
checkpoints. The divergence guard so notices bad steps late, which is safe: each was skipped, and no
checkpoint is written before the read.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from lmforge.config import Config
from lmforge.data.batches import IGNORE_INDEX, DocumentFeed
from lmforge.data.training import load_training_data
from lmforge.device import autocast, resolve_dtype
from lmforge.errors import LmforgeError
from lmforge.models import build_model
from lmforge.models.base import LanguageModel, next_token_loss
from lmforge.tokenizers import Tokenizer, load_tokenizer
from lmforge.training import checkpoint, distributed, evals, flops
from lmforge.training.logs import RunLogs, elapsed_s
from lmforge.training.optim import build_optimizers, grad_scaler, lr_at, set_lr, set_tf32, should_compile
from lmforge.training.run_dir import MODEL_FILE, TOKENIZER_FILE, check_out_dir, load_weights, save_state_dict, save_weights
from lmforge.training.state import Diverged, LoopState, NonFiniteSteps, StepStats, StopReason


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    best_step: int
    best_val_loss: float
    best_val_ppl: float
    best_val_bpb: float
    sample: str
    stop_reason: StopReason = StopReason.MAX_STEPS


class Trainer:
    """One run; `fit` runs the loop. `resume=True` continues from the newest checkpoint and ends bitwise where an
    uninterrupted run would. adapt/finetune.py overrides `_load_data`, `_new_model`, `_training_feed`, `evaluate` and
    `_save_best`."""

    def __init__(self, cfg: Config, out_dir: Path, text: str | None = None, tokenizer: Tokenizer | None = None,
                 resume: bool = False):
        self.cfg, self.out_dir, self.resuming = cfg, Path(out_dir), resume  # cfg: validated, never changed
        t = cfg.train
        self.dist = distributed.from_env()
        distributed.check_batch_split(t, self.dist.world_size)
        if resume:  # its own tokenizer, not one retrained
            tokenizer = tokenizer or load_tokenizer(self.out_dir / TOKENIZER_FILE)
        else:
            check_out_dir(self.out_dir)
        self.device = distributed.init(self.dist, t.device)  # before the data: rank 0 prepares it, the others wait
        self._load_data(text, tokenizer)
        self._build_model()
        self.state = LoopState.start(t.seed, self.device, t.patience)
        self.feed = self._training_feed()
        self.evals = evals.Evaluator(self.cfg, self.tokenizer, self.train_ids, self.val_ids, self.val_bytes,
                                     self.device, self.dtype)
        self.logs = RunLogs(self.out_dir, self.dist.is_main)
        self.pending: list[StepStats] = []  # steps not yet read from the device
        if resume:
            self.restore(checkpoint.latest(self.out_dir))
            if self.step >= t.max_steps:
                raise LmforgeError(f"'{self.out_dir}' is already trained to step {self.step} (--train.max_steps "
                                   f"{t.max_steps}); raise --train.max_steps to train it further")

    @property
    def step(self) -> int:
        return self.state.step

    def _load_data(self, text: str | None, tokenizer: Tokenizer | None) -> None:
        """A text, a prepared directory, or any --data (prepared into RUN_DIR/data) → tokenizer, train/val ids."""
        data = load_training_data(self.cfg, text, tokenizer, self.out_dir, self.dist.is_main,
                                  lambda: distributed.barrier(self.dist))
        self.tokenizer, self.train_ids, self.val_ids = data.tokenizer, data.train_ids, data.val_ids
        self.val_bytes, self.documents = data.val_bytes, data.documents
        # the config as run, saved as config.yaml: with the tokenizer a prepared directory brought
        self.cfg = self.cfg.updated({"data.tokenizer": self.tokenizer.kind})

    def _build_model(self) -> None:
        cfg, t = self.cfg, self.cfg.train
        checkpoint.seed_everything(t.seed)
        self.dtype = resolve_dtype(t.dtype, self.device)
        set_tf32(t.tf32)
        self.model: LanguageModel = self._new_model().to(self.device)
        if self.model.fitted_by_counts and self.dist.enabled:  # an n-gram's training is one counting pass
            raise LmforgeError(f"--model.family {cfg.model.family} is counted in one pass by one process; "
                               "run it without torchrun")
        if self.dist.enabled:
            torch.manual_seed(t.seed + self.dist.rank)  # the same initial weights, but each rank its own dropout
        self.parallel_model = distributed.wrap(self.model, self.dist, t.parallel, self.device)
        compiled = should_compile(t.compile, self.device)
        self.step_model = torch.compile(self.parallel_model) if compiled else self.parallel_model
        # a count table has no parameters, so nothing to optimize
        self.optimizers = [] if self.model.fitted_by_counts else build_optimizers(self.model, t, self.device)
        self.scaler = grad_scaler(self.device, self.dtype)

    def _new_model(self) -> LanguageModel:
        return build_model(self.cfg.model, self.tokenizer.vocab_size)

    def _training_feed(self):
        """Random windows by default; an RNN reads consecutive windows and carries its hidden state across them;
        --data.batches documents: whole documents, padded."""
        cfg, t = self.cfg, self.cfg.train
        if cfg.data.batches == "documents":
            eos = self.tokenizer.eos_id
            if not self.documents or eos is None:
                raise LmforgeError("--data.batches documents needs documents: --data as a folder, a glob, JSONL, "
                                   "a file cut with --separator, or a directory from `lmforge prepare` (one text has "
                                   "no document ends); pass one, or use --data.batches windows")
            return DocumentFeed(self.train_ids, eos, t.batch_size, cfg.model.block_size, self.state.batch_gen)
        return self.model.training_feed(self.train_ids, t.batch_size, cfg.model.block_size, self.state.batch_gen)

    # ------------------------------------------------------------------ steps

    def train_step(self) -> StepStats:
        """One optimizer step over `batch_size` sequences, in `grad_accum` micro-batches (and across ranks).

        The loss is the mean over the global batch's real targets, so padded documents of unequal lengths give the
        same step with any `grad_accum` and number of processes. Nothing here waits for the device."""
        t = self.cfg.train
        lr = lr_at(self.state.step, t)
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
        nats = distributed.total(nats, self.dist)
        for optimizer in self.optimizers:
            self.scaler.unscale_(optimizer)  # true gradients before clipping (a no-op without float16)
        max_norm = t.grad_clip if t.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm  # FSDP: a DTensor
        self._update(nats, grad_norm)
        self.state.tokens_seen += n_targets
        self.state.step += 1
        return StepStats(self.state.step, nats, n_targets, grad_norm, lr)

    def _update(self, nats: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Step the optimizers unless the loss or the gradient is not finite, decided on the device: fused AdamW
        and our Muon take `found_inf`, as from `GradScaler`. Unfused AdamW (off CUDA and CPU) costs a sync."""
        if self.scaler.is_enabled():
            for optimizer in self.optimizers:
                self.scaler.step(optimizer)  # skips the step by itself when a gradient overflowed
            self.scaler.update()
        else:
            found_inf = (~(torch.isfinite(nats) & torch.isfinite(grad_norm))).float()
            for optimizer in self.optimizers:
                if getattr(optimizer, "_step_supports_amp_scaling", False):
                    optimizer.found_inf = found_inf
                    optimizer.step()
                    del optimizer.found_inf
                elif not found_inf.item():
                    optimizer.step()
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """This rank's rows of the next global batch, and the global batch's count of real targets. Every rank draws
        the whole batch from the same generator (its state is the data position) and keeps its share."""
        share = self.cfg.train.batch_size // self.dist.world_size
        x, y = self.feed.next_batch()  # (batch_size, block_size) each, on the CPU
        n_targets = int((y != IGNORE_INDEX).sum())  # every target for windows; fewer for padded documents
        rows = slice(self.dist.rank * share, (self.dist.rank + 1) * share)
        x, y = x[rows], y[rows]
        cuda = self.device.type == "cuda"
        x, y = ((v.pin_memory() if cuda else v).to(self.device, non_blocking=cuda) for v in (x, y))
        return x, y, n_targets

    def evaluate(self) -> dict[str, float]:
        """Val and train loss (evals.py says over what, and why)."""
        return self.evals.losses(self.model)

    def sample(self, max_new_tokens: int | None = None, model: LanguageModel | None = None) -> str:
        return self.evals.sample(model or self.model, self.state.sample_gen, max_new_tokens)

    # ------------------------------------------------------------------ the loop

    def fit(self) -> TrainResult:
        """Train until a stop (steps, seconds, patience, divergence, Ctrl-C); the result is the best eval's."""
        state = self.state
        self.logs.open(self.cfg, self.tokenizer, state.step if self.resuming else None)
        self._log("resume" if self.resuming else "start", step=state.step, params=self.model.num_params(),
                  device=str(self.device), dtype=str(self.dtype).removeprefix("torch."),
                  world_size=self.dist.world_size, vocab_size=self.tokenizer.vocab_size,
                  train_tokens=len(self.train_ids), val_tokens=len(self.val_ids),
                  flops_per_token=flops.flops_per_token(self.model))
        stop: StopReason | None = None  # None: an error ended the run
        whole_val = None  # the best model on the whole val split, when evals scored a sample of it
        try:
            stop = self._fit_counts() if self.model.fitted_by_counts else self._train_until_stop()
            whole_val = self._score_best_on_whole_val()
        except Diverged:
            stop = StopReason.NON_FINITE
            raise
        finally:
            self._log("end", step=state.step, reason=stop.value if stop else "error", best_step=state.best_step,
                      best_val_loss=state.best_val_loss, whole_val=whole_val)
            self.logs.close()
            if self.dist.enabled:  # they hold the process group: drop them so that it ends now (distributed.close)
                self.model = self.parallel_model = self.step_model = None
                self.optimizers = []
            distributed.close(self.dist)
        if state.best is None:
            raise LmforgeError(f"training stopped at step {state.step} before its first eval, so no model was saved; "
                               "train longer or lower --train.eval_interval")
        best = whole_val or state.best
        sample = self.sample(model=self._best_model()) if self.dist.is_main else ""
        return TrainResult(self.out_dir, state.step, state.best_step, best["val_loss"], best["val_ppl"],
                           best["val_bpb"], sample, stop)

    def _fit_counts(self) -> StopReason:
        """A count-based model's training, outside the gradient loop: one counting pass, then one eval."""
        start = time.perf_counter()
        self.model.fit_counts(self.train_ids)
        self.state.step, self.state.tokens_seen = 1, len(self.train_ids) - 1  # every train target, counted once
        tok_s = self.state.tokens_seen / max(time.perf_counter() - start, 1e-9)
        self._eval_event(lr=0.0, tokens_per_s=round(tok_s, 1))
        return StopReason.COUNTED

    def _train_until_stop(self) -> StopReason:
        """The gradient loop: step, log, and at each eval evaluate, sample and checkpoint; returns why it stopped."""
        t, state = self.cfg.train, self.state
        bar = tqdm(total=t.max_steps, initial=state.step, disable=not (t.progress and self.dist.is_main),
                   unit="step", dynamic_ncols=True, leave=False)
        loop_start = time.perf_counter()
        self.window = (loop_start, state.tokens_seen)  # when tokens/s was last measured; it counts real targets
        bad, stop = NonFiniteSteps(t.max_bad_steps, self.scaler.is_enabled()), None
        try:
            while stop is None:
                self.pending.append(self.train_step())
                bar.update(1)
                at_log = state.step % t.log_interval == 0 or state.step == t.max_steps
                out_of_time = self._out_of_time(loop_start, at_log)
                at_eval = state.step % t.eval_interval == 0 or state.step == t.max_steps or out_of_time
                at_checkpoint = at_eval if t.checkpoint_interval == 0 else state.step % t.checkpoint_interval == 0
                if at_log or at_eval or at_checkpoint:
                    loss, grad_norm, lr = self._read_steps(bad)
                if at_log:
                    self._log_train(loss, grad_norm, lr, bar)
                paused = time.perf_counter()  # eval, sampling and checkpoints: not training, so not in tokens/s
                stop_early = self._eval_event(lr) if at_eval else False
                if out_of_time or stop_early or state.step >= t.max_steps:
                    stop = (StopReason.MAX_SECONDS if out_of_time else StopReason.EARLY_STOP if stop_early
                            else StopReason.MAX_STEPS)
                if bad.in_row == 0 and (at_checkpoint or stop is not None):  # never amid a run of bad steps
                    self.save_checkpoint()
                self.window = (self.window[0] + time.perf_counter() - paused, self.window[1])
        except KeyboardInterrupt:
            stop = StopReason.INTERRUPTED
        finally:
            bar.close()
        return stop

    def _read_steps(self, bad: NonFiniteSteps) -> tuple[float, float, float]:
        """Read the steps taken since the last read, in one sync: log the skipped ones and raise `Diverged` when
        they reach `--train.max_bad_steps` in a row. Returns the last step's (loss, grad norm, lr)."""
        pending, self.pending = self.pending, []
        values = torch.stack([torch.stack([s.nats.float(), s.grad_norm.float()]) for s in pending]).tolist()
        for s, (nats, grad_norm) in zip(pending, values):
            loss = nats / s.targets
            reason = bad.update(loss, grad_norm)
            if reason:
                self._log("skip", step=s.step, loss=str(loss), grad_norm=str(grad_norm), reason=reason)
            if bad.diverged:
                raise self._diverged(s.step)
        return loss, grad_norm, s.lr

    def _diverged(self, step: int) -> Diverged:
        t, last = self.cfg.train, checkpoint.list_checkpoints(self.out_dir)
        kept = f"the last good checkpoint (step {last[-1][0]}) is intact" if last else "no checkpoint was saved yet"
        read = f", read at step {self.step}" if step != self.step else ""
        return Diverged(f"the loss was not finite for {t.max_bad_steps} steps in a row (step {step}{read}); {kept} "
                        f"in {self.out_dir}; lower --train.lr (now {t.lr}) and continue with --resume {self.out_dir}")

    def _log_train(self, loss: float, grad_norm: float, lr: float, bar: tqdm) -> None:
        """The train record: the last step's loss and grad norm, tokens/s and MFU since the previous one."""
        t, state = self.cfg.train, self.state
        now = time.perf_counter()
        tok_s = (state.tokens_seen - self.window[1]) / max(now - self.window[0], 1e-9)
        self.window = (now, state.tokens_seen)
        peak = t.peak_flops or flops.peak_flops(self.device, self.dtype, t.tf32)
        utilization = flops.mfu(tok_s, flops.flops_per_token(self.model), peak, self.dist.world_size)
        self._log("train", step=state.step, tokens_seen=state.tokens_seen, loss=loss, lr=lr, grad_norm=grad_norm,
                  tokens_per_s=round(tok_s, 1), mfu=None if utilization is None else round(utilization, 4))
        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tok_s:,.0f}", best_val=f"{state.best_val_loss:.3f}")

    def _out_of_time(self, loop_start: float, at_log: bool) -> bool:
        """Past `--train.max_seconds`. Under torchrun the ranks must agree on it, by a collective (a sync): at log
        steps only."""
        t = self.cfg.train
        if t.max_seconds <= 0 or (self.dist.enabled and not at_log):
            return False
        return distributed.any_rank(time.perf_counter() - loop_start >= t.max_seconds, self.dist, self.device)

    def _eval_event(self, lr: float, **extra: Any) -> bool:
        """Evaluate, keep the best model, sample, redraw the curves; True when early stopping says stop."""
        state = self.state
        losses = self.evaluate()
        improved = state.improve(losses["val_loss"])
        if improved:
            self._save_best()
        record = self._log("eval", step=state.step, tokens_seen=state.tokens_seen, **losses, lr=lr, best=improved,
                           **extra)
        if improved:
            state.best = record
        warning = state.overfit_watch.update(losses["train_loss"], losses["val_loss"], state.best_step,
                                             state.best_val_loss)
        if warning:
            self._log("warning", step=state.step, message=warning)
            if self.dist.is_main:
                tqdm.write(f"warning: {warning}", file=sys.stderr)
        if self.cfg.sample.max_new_tokens > 0:
            text = self.sample()  # every rank samples: under FSDP each forward needs them all
            self.logs.sample(state.step, losses["val_loss"], text)
        self.logs.draw_curves()
        return state.early_stopping.update(improved)

    def _log(self, event: str, **values: Any) -> dict[str, Any]:
        """One record, stamped with the seconds since the run's first process started."""
        return self.logs.write(event, **values, elapsed_s=round(self.state.elapsed_before + elapsed_s(), 3))

    # ------------------------------------------------------------------ the best model and checkpoints

    def _save_best(self) -> None:
        if not self.dist.enabled:
            save_weights(self.model, self.out_dir / MODEL_FILE)
            return
        state = distributed.model_state(self.model)  # a collective under FSDP; the full weights land on rank 0
        if self.dist.is_main:
            save_state_dict(state, self.model, self.out_dir / MODEL_FILE)

    def _best_model(self) -> LanguageModel:
        """The best step's weights (model.safetensors), for rank 0; a plain copy when distributed (the training
        model may be sharded, and the other ranks may have stopped)."""
        model = build_model(self.cfg.model, self.tokenizer.vocab_size).to(self.device) if self.dist.enabled else self.model
        load_weights(model, self.out_dir / MODEL_FILE)
        return model

    def _score_best_on_whole_val(self) -> dict[str, float] | None:
        """The best model on the whole val split, when evals scored a sample of it (rank 0); else None."""
        if self.evals.stretches is None or self.state.best is None or not self.dist.is_main:
            return None
        return {"step": self.state.best_step, **self.evals.whole_val(self._best_model())}

    def save_checkpoint(self) -> None:
        """Write the whole resumable state; collectives on every rank, the file by rank 0."""
        if not self.model.fitted_by_counts:  # one counting pass leaves nothing to resume: model.safetensors is the run
            checkpoint.save_trainer(self)

    def restore(self, meta_path: Path) -> None:
        """Load a checkpoint: rank 0 reads and verifies it, then broadcasts it to the other ranks."""
        checkpoint.restore_trainer(self, meta_path)
