"""The loop's behaviour: gradient accumulation, the non-finite guard, early stopping, the overfitting warning,
and what it logs (metrics.jsonl, TensorBoard, tokens/s)."""

import math
import time

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from training_helpers import assert_same_tensors, checkpoint_state, records, scripted_evals, watch_unchanged

from lmforge.data.batches import IGNORE_INDEX, pad_batch
from lmforge.errors import LmforgeError
from lmforge.models import next_token_loss
from lmforge.training import Trainer, checkpoint, lr_at
from lmforge.training.optim import set_lr


class Recorder(torch.nn.Module):
    """The model, recording the batch shape of every forward."""

    def __init__(self, model):
        super().__init__()
        self.model, self.shapes = model, []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return self.model(x)


def test_accumulating_4_micro_batches_of_8_matches_one_batch_of_32(tmp_path, tiny_cfg):
    whole = Trainer(tiny_cfg(batch_size=32, grad_accum=1), tmp_path / "whole")
    accumulated = Trainer(tiny_cfg(batch_size=32, grad_accum=4), tmp_path / "accum")
    accumulated.step_model = Recorder(accumulated.model)
    for _ in range(3):
        a, b = whole.train_step(), accumulated.train_step()
        assert b.loss == pytest.approx(a.loss, abs=1e-5) and float(b.grad_norm) == pytest.approx(float(a.grad_norm), abs=1e-5)
    assert accumulated.step_model.shapes == [(8, 32)] * 12  # 4 forwards of 8 sequences per step
    for (name, a), b in zip(whole.model.named_parameters(), accumulated.model.parameters()):
        assert (a - b).abs().max().item() < 1e-5, name


class FixedDocuments:
    """A feed that gives the same right-padded batch every step: 4 documents that fill the context (32 targets
    each), then 4 of one target each, so with grad_accum 2 one micro-batch holds 128 real targets and the other 4."""

    def __init__(self, vocab_size: int, block_size: int):
        gen = torch.Generator().manual_seed(0)
        docs = [torch.randint(vocab_size, (n,), generator=gen).numpy() for n in [block_size + 1] * 4 + [2] * 4]
        self.x, self.y = pad_batch(docs)
        self.real_targets = int((self.y != IGNORE_INDEX).sum())

    def next_batch(self):
        return self.x, self.y

    def forward(self, model, x, rows):
        return model(x)

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def document_trainer(tiny_cfg, out, **train) -> Trainer:
    trainer = Trainer(tiny_cfg(**train), out)
    trainer.feed = FixedDocuments(trainer.tokenizer.vocab_size, trainer.cfg.model.block_size)
    return trainer


def test_padded_documents_of_unequal_length_give_the_same_step_with_any_grad_accum(tmp_path, tiny_cfg):
    whole = document_trainer(tiny_cfg, tmp_path / "whole", batch_size=8, grad_accum=1)
    accumulated = document_trainer(tiny_cfg, tmp_path / "accum", batch_size=8, grad_accum=2)
    feed = whole.feed
    assert feed.real_targets == 4 * 32 + 4
    for _ in range(3):
        with torch.no_grad():  # the per-token mean over the whole batch, from the weights before the step
            expected = next_token_loss(whole.model(feed.x), feed.y).item()
        a, b = whole.train_step(), accumulated.train_step()
        assert a.loss == pytest.approx(expected, abs=1e-6) and b.loss == pytest.approx(expected, abs=1e-6)
        assert float(b.grad_norm) == pytest.approx(float(a.grad_norm), rel=1e-5)
    for (name, a), b in zip(whole.model.named_parameters(), accumulated.model.parameters()):
        assert (a - b).abs().max().item() < 1e-6, name


class Timed:
    """Wrap a trainer's train_step, recording how long each step took (by the step it ends at)."""

    def __init__(self, trainer: Trainer):
        self.trainer, self.step, self.seconds = trainer, trainer.train_step, {}
        trainer.train_step = self

    def __call__(self):
        start = time.perf_counter()
        out = self.step()
        self.seconds[self.trainer.step] = time.perf_counter() - start
        return out


def test_tokens_seen_and_tokens_per_s_count_real_targets_not_padding(tmp_path, tiny_cfg):
    trainer = document_trainer(tiny_cfg, tmp_path / "run", max_steps=3, eval_interval=3, peak_flops=1e12)
    timed = Timed(trainer)
    trainer.fit()
    real = trainer.feed.real_targets  # 132 of the batch's 8 × 32 positions
    train = records(tmp_path / "run", "train")
    assert [r["tokens_seen"] for r in train] == [real, 2 * real, 3 * real]
    assert records(tmp_path / "run", "eval")[0]["tokens_seen"] == 3 * real
    for r in train:  # each window holds one step, and lasts at least as long as it: at most `real` tokens in it
        assert r["tokens_per_s"] * timed.seconds[r["step"]] <= real * 1.001, r


def test_tokens_per_s_after_an_eval_times_training_steps_only(tmp_path, tiny_cfg):
    """Eval, sampling and checkpoints take time between steps; the train record after them must not count it."""
    pause = 0.5
    trainer = Trainer(tiny_cfg(max_steps=3, eval_interval=2, peak_flops=1e12), tmp_path / "run")
    scripted_evals(trainer, [(3.0, 3.0), (2.9, 2.9)])
    evaluate, save_checkpoint = trainer.evaluate, trainer.save_checkpoint
    trainer.evaluate = lambda: time.sleep(pause) or evaluate()
    trainer.save_checkpoint = lambda: time.sleep(pause) or save_checkpoint()
    timed = Timed(trainer)
    trainer.fit()
    per_step = trainer.cfg.train.batch_size * trainer.cfg.model.block_size
    after = records(tmp_path / "run", "train")[2]  # step 3, the first after the eval and checkpoint of step 2
    assert after["step"] == 3
    window_s = per_step / after["tokens_per_s"]
    # the window holds step 3 and the loop's own bookkeeping, not the 2 × 0.5 s of eval and checkpoint
    assert timed.seconds[3] <= window_s * 1.001 and window_s < timed.seconds[3] + pause / 2, (window_s, timed.seconds)


class NaNAt(torch.nn.Module):
    """The model, but with NaN logits at the chosen optimizer steps."""

    def __init__(self, trainer: Trainer, steps):
        super().__init__()
        self.trainer, self.steps = trainer, steps

    def forward(self, x):
        logits = self.trainer.model(x)
        return logits * math.nan if self.trainer.step + 1 in self.steps else logits


def test_an_injected_nan_is_skipped_and_logged(tmp_path, tiny_cfg):
    trainer = Trainer(tiny_cfg(max_steps=6, eval_interval=6), tmp_path / "run")
    trainer.step_model = NaNAt(trainer, {3})
    seen = watch_unchanged(trainer)
    trainer.fit()
    assert seen == {1: False, 2: False, 3: True, 4: False, 5: False, 6: False}  # step 3 left the weights alone
    skips = records(tmp_path / "run", "skip")
    assert [(r["step"], r["loss"], r["reason"]) for r in skips] == [(3, "nan", "non-finite loss")]
    assert records(tmp_path / "run", "end")[0]["reason"] == "max_steps"
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_a_persistent_nan_stops_cleanly_with_the_last_good_checkpoint_intact(tmp_path, tiny_cfg):
    trainer = Trainer(tiny_cfg(max_steps=20, eval_interval=4, max_bad_steps=3), tmp_path / "run")
    trainer.step_model = NaNAt(trainer, set(range(6, 100)))
    with pytest.raises(LmforgeError, match=r"not finite for 3 steps in a row \(step 8\).*checkpoint \(step 4\) is intact"):
        trainer.fit()
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path / "run")] == [4]
    assert [r["step"] for r in records(tmp_path / "run", "skip")] == [6, 7, 8]
    assert records(tmp_path / "run", "end")[0]["reason"] == "non_finite"
    state = checkpoint_state(tmp_path / "run", 4)
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    resumed = Trainer(tiny_cfg(max_steps=20, eval_interval=4, max_bad_steps=3), tmp_path / "run", resume=True)
    assert resumed.step == 4


def test_early_stopping_and_the_overfitting_warning(tmp_path, tiny_cfg, capsys):
    trainer = Trainer(tiny_cfg(max_steps=100, eval_interval=2, patience=2), tmp_path / "run")
    scripted_evals(trainer, [(3.0, 3.0), (2.5, 2.6), (2.2, 2.7), (2.0, 2.8), (1.0, 1.0)])
    result = trainer.fit()
    assert (result.steps, result.stop_reason, result.best_step) == (8, "early_stop", 4)
    warnings = records(tmp_path / "run", "warning")
    assert [w["step"] for w in warnings] == [6, 8]
    assert "best model (val loss 2.6000) is from step 4" in warnings[0]["message"]
    assert "warning: val loss rose from 2.6000 to 2.7000" in capsys.readouterr().err
    assert records(tmp_path / "run", "end")[0]["reason"] == "early_stop"
    assert checkpoint.latest(tmp_path / "run").name == "step-00000008.json"  # the stop is resumable


def test_tensorboard_events_and_throughput_are_logged(tmp_path, tiny_cfg):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    Trainer(tiny_cfg(max_steps=4, eval_interval=2, tensorboard=True), tmp_path / "run").fit()
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [e.step for e in events.Scalars("eval/val_loss")] == [2, 4]
    train = records(tmp_path / "run", "train")
    assert all(r["tokens_per_s"] > 0 for r in train)
    assert all(r["mfu"] is None for r in train)  # a CPU has no peak in the table: no MFU rather than a guess
    start = records(tmp_path / "run", "start")[0]
    assert start["flops_per_token"] > 6 * 1000 and start["world_size"] == 1


def test_mfu_is_reported_when_a_peak_is_given(tmp_path, tiny_cfg):
    """A peak so low that the MFU is far above 1, so that its 4 logged decimals lose nothing: against a real peak a
    tiny CPU model's MFU is about 0.0005, where rounding alone hides an error of 10%."""
    Trainer(tiny_cfg(max_steps=2, eval_interval=2, peak_flops=1e6), tmp_path / "run").fit()
    train = records(tmp_path / "run", "train")
    per_token = records(tmp_path / "run", "start")[0]["flops_per_token"]
    for r in train:
        assert r["mfu"] > 1 and r["mfu"] == pytest.approx(r["tokens_per_s"] * per_token / 1e6, rel=1e-4)


def test_batch_that_does_not_split_over_accumulation_names_both_flags(tiny_cfg):
    with pytest.raises(LmforgeError, match=r"--train.batch_size \(8\).*--train.grad_accum \(3\)"):
        tiny_cfg(grad_accum=3)


def reference_step(trainer: Trainer) -> None:
    """The step as lmforge took it before issue 14, with its host syncs: the loss and gradient norm read back as
    floats every step, and a non-finite one skipped by not calling the optimizers."""
    t = trainer.cfg.train
    set_lr(trainer.optimizers, lr_at(trainer.step, t))
    x, y, n_targets = trainer._next_batch()
    micro, nats = x.size(0) // t.grad_accum, torch.zeros(())
    for i in range(t.grad_accum):
        rows = slice(i * micro, (i + 1) * micro)
        micro_nats = next_token_loss(trainer.feed.forward(trainer.step_model, x[rows], rows), y[rows], reduction="sum")
        (micro_nats * (1 / n_targets)).backward()
        nats += micro_nats.detach()
    loss = float(nats) / n_targets
    norm = float(torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), t.grad_clip or math.inf))
    if math.isfinite(loss) and math.isfinite(norm):
        for optimizer in trainer.optimizers:
            optimizer.step()
    for optimizer in trainer.optimizers:
        optimizer.zero_grad(set_to_none=True)
    trainer.state.step += 1


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_a_step_that_skips_on_the_device_gives_the_weights_the_host_checked_step_gave(tmp_path, tiny_cfg, optimizer):
    """Bit for bit, over steps with a NaN among them: the skip decided on the device (found_inf) is a true skip."""
    new, old = (Trainer(tiny_cfg(optimizer=optimizer, grad_accum=2), tmp_path / name) for name in ("new", "old"))
    for trainer in (new, old):
        trainer.step_model = NaNAt(trainer, {3, 5})
    for _ in range(7):
        new.train_step()
        reference_step(old)
        for (name, a), b in zip(new.model.named_parameters(), old.model.parameters()):
            assert torch.equal(a, b), (new.step, name)
    for a, b in zip(new.optimizers, old.optimizers):
        assert_same_tensors(a.state_dict(), b.state_dict())


def test_reading_the_device_at_log_steps_only_changes_nothing(tmp_path, tiny_cfg):
    runs = {n: Trainer(tiny_cfg(max_steps=10, eval_interval=10, log_interval=n), tmp_path / str(n)) for n in (1, 5)}
    for trainer in runs.values():
        trainer.fit()
    for a, b in zip(runs[1].model.parameters(), runs[5].model.parameters()):
        assert torch.equal(a, b)
    every = {r["step"]: r for r in records(tmp_path / "1", "train")}
    sparse = records(tmp_path / "5", "train")
    assert [r["step"] for r in sparse] == [5, 10]
    for r in sparse:  # each record is its step's own loss and gradient norm, not another step's
        assert (r["loss"], r["grad_norm"], r["lr"]) == tuple(every[r["step"]][k] for k in ("loss", "grad_norm", "lr"))


def test_a_run_of_nan_steps_between_log_steps_is_noticed_at_the_next_read(tmp_path, tiny_cfg):
    """Steps are read at log steps (5, 10) and checkpoints (4, 8): NaN from step 6, two in a row diverge at step 7,
    noticed at 8, before its checkpoint is written."""
    cfg = tiny_cfg(max_steps=20, log_interval=5, eval_interval=10, checkpoint_interval=4, max_bad_steps=2)
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.step_model = NaNAt(trainer, set(range(6, 100)))
    with pytest.raises(LmforgeError, match=r"not finite for 2 steps in a row \(step 7, read at step 8\).*"
                                           r"checkpoint \(step 4\) is intact"):
        trainer.fit()
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path / "run")] == [4]
    assert [r["step"] for r in records(tmp_path / "run", "skip")] == [6, 7]
    assert records(tmp_path / "run", "end")[0]["reason"] == "non_finite"
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


class ScalarReads(TorchDispatchMode):
    """Count the reads of a tensor's value back to Python (`.item()`, `float()`, `bool()`): on a GPU, each waits
    for the device to finish everything queued before it."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func is torch.ops.aten._local_scalar_dense.default
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_a_step_reads_nothing_back_from_the_device(tmp_path, tiny_cfg, optimizer):
    trainer = Trainer(tiny_cfg(optimizer=optimizer, grad_accum=2), tmp_path / "run")
    trainer.train_step()  # the optimizers' lazy set-up
    with ScalarReads() as reads:
        for _ in range(3):
            trainer.train_step()
    assert reads.count == 3  # one a step: the batch's count of real targets, read while the batch is on the host


class OptimizerSpy:
    """Record, at each call of an optimizer's `step`, its learning rate and the global norm of the gradients."""

    def __init__(self, trainer: Trainer):
        (self.optimizer,) = trainer.optimizers
        self.step, self.model, self.calls = self.optimizer.step, trainer.model, []
        self.optimizer.step = self

    def __call__(self, *args, **kwargs):
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()
        self.calls.append((self.optimizer.param_groups[0]["lr"], norm))
        return self.step(*args, **kwargs)


@pytest.mark.parametrize("clip", [1e-3, 0.0])
def test_the_update_sees_the_gradient_clipped_to_grad_clip_and_the_log_the_norm_before(tmp_path, tiny_cfg, clip):
    trainer = Trainer(tiny_cfg(grad_clip=clip), tmp_path / "run")
    spy = OptimizerSpy(trainer)
    raw = float(trainer.train_step().grad_norm)
    assert raw > 0.05  # far above the clip, so clipping shows
    ((_, norm),) = spy.calls
    assert norm == pytest.approx(clip if clip else raw, rel=1e-4)  # 0: no clipping, the L2 norm as logged


def test_each_step_runs_at_its_scheduled_rate(tmp_path, tiny_cfg):
    """Step s (0-based) at lr_at(s): warmup over 4 steps, then linear from the peak to 0 at step 8."""
    trainer = Trainer(tiny_cfg(lr=1e-3, min_lr=0.0, warmup_steps=4, max_steps=8, schedule="linear"), tmp_path / "run")
    spy = OptimizerSpy(trainer)
    logged = [trainer.train_step().lr for _ in range(8)]
    expected = [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 7.5e-4, 5e-4, 2.5e-4]
    assert [lr for lr, _ in spy.calls] == pytest.approx(expected) and logged == pytest.approx(expected)


def test_the_best_model_is_the_best_evals_and_an_equal_loss_is_no_improvement(tmp_path, tiny_cfg):
    """Evals at every step: 3.0, 2.0, then 2.0 again (a tie, not a new best) and 2.5: with patience 2 the run stops
    at step 4, and its best is step 2's: the figures of its eval, and its weights in model.safetensors."""
    from lmforge.training.run_dir import load_weights

    trainer = Trainer(tiny_cfg(max_steps=10, eval_interval=1, patience=2), tmp_path / "run")
    scripted_evals(trainer, [(3.0, 3.0), (2.0, 2.0), (2.0, 2.0), (2.5, 2.5)])
    evaluate, weights_at = trainer.evaluate, {}

    def evaluate_and_copy():
        weights_at[trainer.step] = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        return evaluate()

    trainer.evaluate = evaluate_and_copy
    result = trainer.fit()
    assert (result.steps, result.stop_reason, result.best_step, result.best_val_loss) == (4, "early_stop", 2, 2.0)
    assert [r["best"] for r in records(tmp_path / "run", "eval")] == [True, True, False, False]
    saved = Trainer(tiny_cfg(), tmp_path / "fresh").model
    load_weights(saved, tmp_path / "run" / "model.safetensors")
    assert not torch.equal(weights_at[2]["blocks.0.mlp.fc.weight"], weights_at[3]["blocks.0.mlp.fc.weight"])
    assert_same_tensors(saved.state_dict(), weights_at[2])


def test_max_seconds_stops_the_run_with_an_eval_and_a_checkpoint(tmp_path, tiny_cfg):
    """A 1 s limit and a second step that sleeps 1.2 s: past it after step 2 (not after step 1, unless a tiny step
    takes a second), which is no eval step, yet the run evaluates and checkpoints there."""
    trainer = Trainer(tiny_cfg(max_seconds=1.0, max_steps=20, eval_interval=10), tmp_path / "run")
    step, calls = trainer.train_step, []
    trainer.train_step = lambda: calls.append(1) or time.sleep(1.2 if len(calls) == 2 else 0) or step()
    result = trainer.fit()
    assert (result.steps, result.stop_reason) == (2, "max_seconds")
    assert [r["step"] for r in records(tmp_path / "run", "eval")] == [2]
    assert checkpoint.latest(tmp_path / "run").name == "step-00000002.json"
