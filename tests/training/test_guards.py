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
