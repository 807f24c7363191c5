import math

import torch
from training_helpers import records, watch_unchanged

from lmforge.training import Trainer, checkpoint
from lmforge.training.state import EarlyStopping, OverfitWatch


def test_early_stopping_counts_evals_without_a_new_best():
    stop = EarlyStopping(patience=2)
    assert [stop.update(improved) for improved in (True, False, True, False, False)] == [False, False, False, False, True]
    never = EarlyStopping(patience=0)
    assert not any(never.update(False) for _ in range(50))


def test_early_stopping_state_round_trips():
    stop = EarlyStopping(patience=3)
    stop.update(False), stop.update(False)
    again = EarlyStopping(patience=3)
    again.load_state_dict(stop.state_dict())
    assert again.update(False) is True


def test_overfit_warning_needs_val_up_and_train_down():
    watch = OverfitWatch()
    assert watch.update(3.0, 3.0, 0, 3.0) is None  # first eval: nothing to compare
    assert watch.update(2.5, 2.8, 2, 2.8) is None  # both fell
    assert watch.update(2.6, 2.9, 2, 2.8) is None  # both rose: not overfitting, maybe a bad lr
    message = watch.update(2.4, 3.0, 2, 2.8)
    assert "rose from 2.9000 to 3.0000" in message and "from step 2" in message
    restored = OverfitWatch()
    restored.load_state_dict(watch.state_dict())
    assert restored.update(2.3, 3.1, 2, 2.8) is not None


def test_non_finite_steps_count_in_a_row_and_a_gradient_overflow_under_a_scaler_does_not():
    from lmforge.training.state import NonFiniteSteps

    nan = float("nan")
    bad = NonFiniteSteps(limit=2, scaler_enabled=False)
    assert bad.update(1.0, 1.0) is None and bad.in_row == 0
    assert bad.update(nan, 1.0) == "non-finite loss" and not bad.diverged
    assert bad.update(1.0, float("inf")) == "non-finite gradient" and bad.diverged
    assert bad.update(1.0, 1.0) is None and bad.in_row == 0  # a finite step ends the run of bad ones
    scaled = NonFiniteSteps(limit=1, scaler_enabled=True)
    assert scaled.update(1.0, float("inf")) == "non-finite gradient" and scaled.in_row == 0  # an fp16 overflow
    assert scaled.update(nan, 1.0) == "non-finite loss" and scaled.diverged


def test_overfit_warning_needs_val_to_rise_not_merely_stay():
    watch = OverfitWatch()
    watch.update(3.0, 2.5, 1, 2.5)
    assert watch.update(2.0, 2.5, 1, 2.5) is None  # train fell, val held: still learning
    assert watch.update(1.9, 2.50001, 1, 2.5) is not None


def test_loop_state_round_trips_every_field():
    from lmforge.training.state import LoopState

    state = LoopState.start(seed=1, device=torch.device("cpu"), patience=3)
    state.step, state.tokens_seen, state.elapsed_before = 4, 1234, 10.0
    state.improve(2.5)
    state.step = 7
    state.early_stopping.update(False)
    state.overfit_watch.update(2.0, 2.6, 4, 2.5)
    torch.randn(5, generator=state.batch_gen), torch.randn(2, generator=state.sample_gen)
    saved = state.state_dict(elapsed_now=2.5)
    again = LoopState.start(seed=2, device=torch.device("cpu"), patience=3)
    again.load_state_dict(saved, tokens_per_step=100)
    assert (again.step, again.tokens_seen, again.elapsed_before) == (7, 1234, 12.5)  # 10 s before, 2.5 s now
    assert (again.best_val_loss, again.best_step) == (2.5, 4)
    assert again.early_stopping.evals_since_best == 1 and again.overfit_watch.previous == (2.0, 2.6)
    for gen in ("batch_gen", "sample_gen"):
        assert torch.equal(torch.randn(3, generator=getattr(again, gen)), torch.randn(3, generator=getattr(state, gen)))
    del saved["tokens_seen"]  # a checkpoint from before it was saved: steps × tokens per step
    again.load_state_dict(saved, tokens_per_step=100)
    assert again.tokens_seen == 700


def poison_gradient_at(trainer, steps, value: float):
    """Make one weight's gradient `value` (inf or NaN) in the optimizer steps `steps` (1-based); the loss stays finite."""
    weight = trainer.model.norm.weight
    weight.register_hook(lambda g: torch.full_like(g, value) if trainer.step + 1 in steps else g)


def test_a_finite_loss_with_an_infinite_gradient_is_skipped_and_logged(tmp_path, tiny_cfg):
    trainer = Trainer(tiny_cfg(max_steps=3, eval_interval=3), tmp_path / "run")
    poison_gradient_at(trainer, {2}, math.inf)
    unchanged = watch_unchanged(trainer)
    trainer.fit()
    assert unchanged == {1: False, 2: True, 3: False}
    assert [(r["step"], r["reason"]) for r in records(tmp_path / "run", "skip")] == [(2, "non-finite gradient")]


def test_no_checkpoint_is_written_amid_a_run_of_bad_steps(tmp_path, tiny_cfg):
    """Step 4 is bad (one of 3 allowed in a row): its checkpoint is not written; step 8's is."""
    trainer = Trainer(tiny_cfg(max_steps=8, eval_interval=8, checkpoint_interval=4, max_bad_steps=3), tmp_path / "run")
    poison_gradient_at(trainer, {4}, math.nan)
    trainer.fit()
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path / "run")] == [8]
