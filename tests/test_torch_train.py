"""The scalable training loop (in memory, streamed from Parquet, the scale notebook) and the teaching notebook."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from labline.data.spec import infer_spec
from labline.data.synth import write_synth_parquet
from labline.models.artifact import load_model
from labline.models.parquet_rows import ParquetRows
from labline.models.torch_net import select_device
from labline.models.torch_train import FitConfig, NetworkTargets, TensorData, build_model, fit, scaled_lr
from labline.models.train_parquet import train_parquet
from runner.execute import execute_step


def test_learning_rate_grows_with_the_square_root_of_the_batch():
    assert scaled_lr(0.01, 16, 16) == pytest.approx(0.01)
    assert scaled_lr(0.01, 4096, 16) == pytest.approx(0.16)
    with pytest.raises(ValueError, match="batch sizes must be positive"):
        scaled_lr(0.01, 0, 16)
    with pytest.raises(ValueError, match="device must be"):
        select_device("tpu")


def test_network_targets_round_trip_and_names_unknown_labels():
    values = pd.Series([10.0, 12.0, 14.0])
    regression = NetworkTargets.fit("regression", values)
    encoded = regression.encode(values)
    assert encoded.shape == (3, 1) and abs(float(encoded.mean())) < 1e-6
    np.testing.assert_allclose(regression.decode(encoded), values, rtol=1e-6)
    assert regression.metadata() == {"target_mean": 12.0, "target_scale": pytest.approx(np.std([10, 12, 14]))}
    classes = NetworkTargets.fit("classification", pd.Series(["b", "a", "b"]))
    assert classes.labels == ["a", "b"] and list(classes.encode(pd.Series(["b", "a"]))) == [1, 0]
    with pytest.raises(ValueError, match=r"\['c'\] are not among the labels"):
        classes.encode(pd.Series(["c"]))


@pytest.fixture(scope="module")
def synth_file(tmp_path_factory):
    return write_synth_parquet(
        tmp_path_factory.mktemp("synth") / "iris.parquet", rows=12_000, seed=5, row_group_rows=2_000
    )


def test_streamed_and_in_memory_training_see_the_same_split_and_both_learn(synth_file, tmp_path):
    spec = infer_spec(pd.read_parquet(synth_file).head(1000), "species", name="iris")
    common = {"seed": 1, "test_size": 0.2, "val_size": 0.1}
    sizes = {
        part: len(pd.concat(list(ParquetRows(synth_file, spec, part, **common).frames())))
        for part in ("train", "val", "test")
    }
    assert sum(sizes.values()) == 12_000 and 0.17 < sizes["test"] / 12_000 < 0.23
    results = {}
    for stream in ("no", "yes"):
        results[stream] = train_parquet(
            synth_file,
            tmp_path / stream,
            target="species",
            epochs=2,
            batch_size=256,
            seed=1,
            stream=stream,
            device="cpu",
            target_accuracy=0.95,
        )
    assert results["no"]["streamed"] is False and results["yes"]["streamed"] is True
    for summary in results.values():
        assert summary["test_rows"] == sizes["test"]
        assert summary["test_accuracy"] >= 0.95
        assert summary["time_to_target"]["val_accuracy"] >= 0.95 and summary["time_to_target"]["step"] > 0
        assert summary["samples_per_second"] > 0 and summary["peak_memory_mb"] > 0
    model = load_model(results["yes"]["model_dir"])
    test = pd.read_parquet(synth_file).head(500)
    assert (model.predict(test) == test["species"].to_numpy()).mean() >= 0.93


def test_fit_records_when_validation_first_reaches_the_target():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 2, generator=generator)
    y = (x[:, 0] + x[:, 1] > 0).long()  # linearly separable: reachable quickly
    _, model = build_model(2, [8], 2, torch.device("cpu"), seed=0)
    config = FitConfig(epochs=5, batch_size=200, lr=0.05, target_accuracy=0.97, eval_every_steps=5)
    result = fit(model, TensorData(x[:3000], y[:3000]), (x[3000:], y[3000:]), "classification", config)
    assert len(result.history["epoch"]) == 5 and result.steps == 5 * 15
    reached = result.target_reached
    assert reached is not None and reached["val_accuracy"] >= 0.97
    first_epoch_at_target = next(i for i, a in enumerate(result.history["val_accuracy"]) if a >= 0.97) + 1
    assert reached["epoch"] <= first_epoch_at_target
    assert result.samples == 5 * 3000 and result.flops_per_sample == 6 * (2 * 8 + 8 * 2)


def test_train_torch_notebook_does_regression(root, tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"a": rng.normal(size=500), "b": rng.uniform(0, 10, 500), "c": rng.choice(["x", "y", "z"], 500)}
    )
    frame["y"] = (
        3 * frame["a"] + 0.5 * frame["b"] + np.where(frame["c"] == "x", 2.0, 0.0) + 100 + rng.normal(0, 0.2, 500)
    )
    data = tmp_path / "reg.csv"
    frame.to_csv(data, index=False)
    outcome = execute_step(
        root / "notebooks" / "train_torch.ipynb",
        tmp_path / "out.ipynb",
        {"dataset": str(data), "target": "y", "epochs": 40, "batch_size": 32, "output_dir": str(tmp_path / "run")},
        cwd=root,
    )
    assert outcome.status == "succeeded", outcome.error
    scraps = outcome.scraps
    assert scraps["task"] == "regression" and scraps["model_name"] == "torch-mlp"
    assert scraps["test_r2"] > 0.95 and 0 < scraps["test_mae"] <= scraps["test_rmse"] < 1.0
    assert "test_accuracy" not in scraps and "val_accuracy" not in scraps and "confusion_matrix" not in scraps
    model = load_model(scraps["model_dir"])
    assert model.metadata["target_mean"] == pytest.approx(frame["y"].mean(), abs=0.5)
    predicted = model.predict(frame)
    assert np.abs(predicted - frame["y"].to_numpy()).mean() < 1.0  # in the target's units, not standardized


def test_train_torch_scale_notebook_trains_large_data_with_the_library_loop(root, tmp_path):
    outcome = execute_step(
        root / "notebooks" / "train_torch_scale.ipynb",
        tmp_path / "out.ipynb",
        {"dataset": "iris_synth:80000", "epochs": 2, "batch_size": 2048, "output_dir": str(tmp_path / "run")},
        cwd=root,
    )
    assert outcome.status == "succeeded", outcome.error
    scraps = outcome.scraps
    assert scraps["trainer"] == "labline" and scraps["epochs"] == 2 and scraps["model_name"] == "torch-mlp"
    assert scraps["test_accuracy"] >= 0.95 and scraps["streamed"] is False
    assert scraps["time_to_target"]["val_accuracy"] >= scraps["target_accuracy"] == 0.95
    assert scraps["samples_per_second"] > 0 and scraps["peak_memory_mb"] > 0
    assert len(scraps["loss_curve"]["val_accuracy"]) == 2
    model = load_model(scraps["model_dir"])
    assert model.sha256 == scraps["artifact_sha256"]
    rows = pd.read_parquet(tmp_path / "run" / "snapshot.parquet").head(400)
    assert (model.predict(rows) == rows["species"].to_numpy()).mean() >= 0.93


def test_train_torch_notebook_is_one_readable_loop(root, tmp_path):
    """The teaching notebook trains with its own loop on Iris, with no trainer switch left."""
    from runner.params import read_parameters

    declared = read_parameters(root / "notebooks" / "train_torch.ipynb")
    assert "trainer" not in declared and {"epochs", "batch_size", "lr", "hidden_sizes"} <= set(declared)
    outcome = execute_step(
        root / "notebooks" / "train_torch.ipynb",
        tmp_path / "out.ipynb",
        {"epochs": 30, "output_dir": str(tmp_path / "run")},
        cwd=root,
    )
    assert outcome.status == "succeeded", outcome.error
    scraps = outcome.scraps
    assert "trainer" not in scraps and scraps["epochs"] == 30 and scraps["device"] == select_device("auto").type
    assert len(scraps["loss_curve"]["train_loss"]) == 30
    assert scraps["loss_curve"]["train_loss"][-1] < scraps["loss_curve"]["train_loss"][0]
    assert scraps["test_accuracy"] >= 0.9
