"""Training schedules: the batch size that grows with the rows, and early stopping that keeps the
best epoch's weights (labline.models.schedule), in the library's loop."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labline.models.schedule import MAX_BATCH, MIN_BATCH, EarlyStopping, batch_size_for_rows, resolve_batch_size
from labline.models.torch_train import FitConfig, TensorData, build_model, evaluate, fit


@settings(max_examples=200, derandomize=True)
@given(st.integers(1, 10**9), st.integers(1, 10**9))
def test_batch_size_is_a_bounded_power_of_two_that_grows_with_the_rows(rows, more):
    size = batch_size_for_rows(rows)
    assert MIN_BATCH <= size <= MAX_BATCH and size & (size - 1) == 0
    assert batch_size_for_rows(rows + more) >= size


def test_batch_sizes_of_the_course_data_sets():
    assert batch_size_for_rows(96) == 16  # Iris: 150 rows, less test and validation
    assert batch_size_for_rows(16_670) == 256  # Census: 26,048 rows, less test and validation
    assert resolve_batch_size(0, 16_670) == 256 and resolve_batch_size(32, 16_670) == 32
    with pytest.raises(ValueError, match="batch_size must be 0"):
        resolve_batch_size(-1, 100)


def test_early_stopping_counts_epochs_since_the_best_loss():
    stopper = EarlyStopping(patience=3, min_delta=0.01)
    losses = [1.0, 0.8, 0.795, 0.79, 0.9]  # 0.795 and 0.79 improve by less than min_delta
    stops = [stopper.update(epoch, loss) for epoch, loss in enumerate(losses, start=1)]
    assert stops == [False, False, False, False, True]
    assert stopper.best_epoch == 2 and stopper.stopped_early
    assert "after epoch 2" in stopper.reason
    never = EarlyStopping(patience=0)
    assert not any(never.update(epoch, 1.0) for epoch in range(1, 50))
    assert never.reason == "ran all 49 epochs (no early stopping)"
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)


def overfitting_problem() -> tuple[TensorData, tuple[torch.Tensor, torch.Tensor]]:
    """Few training rows with random labels: the validation loss falls briefly, then rises."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(48, 6, generator=generator)
    y = torch.randint(0, 3, (48,), generator=generator)
    val_x = torch.randn(200, 6, generator=generator)
    return TensorData(x, y), (val_x, torch.randint(0, 3, (200,), generator=generator))


def test_fit_stops_on_validation_and_keeps_the_best_weights():
    data, val = overfitting_problem()
    net, module = build_model(6, [64], 3, torch.device("cpu"), seed=0)
    result = fit(module, data, val, "classification", FitConfig(epochs=300, batch_size=16, lr=0.01, patience=5))
    epochs_run = len(result.history["epoch"])
    assert epochs_run < 300, "random labels must stop early"
    best = min(range(epochs_run), key=lambda i: result.history["val_loss"][i])
    assert result.best_epoch == result.history["epoch"][best] == epochs_run - 5
    assert evaluate(net, *val, "classification")["loss"] == pytest.approx(result.history["val_loss"][best], rel=1e-6)
    assert result.stop_reason == f"no better validation loss for 5 epochs after epoch {result.best_epoch}"


def test_fit_without_patience_runs_every_epoch():
    data, val = overfitting_problem()
    _, module = build_model(6, [8], 3, torch.device("cpu"), seed=0)
    result = fit(module, data, val, "classification", FitConfig(epochs=7, batch_size=16, lr=0.01))
    assert result.history["epoch"] == list(range(1, 8)) and result.best_epoch == 7
