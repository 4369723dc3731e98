"""Streaming batch inference gives exactly what in-memory prediction gives, for any batch size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from labline.data.synth import write_synth_parquet
from labline.models.artifact import load_model
from labline.models.batch_infer import predict_file
from labline.models.train_parquet import train_parquet


@pytest.fixture(scope="module")
def model_and_input(tmp_path_factory):
    folder = tmp_path_factory.mktemp("infer")
    train = write_synth_parquet(folder / "train.parquet", rows=6_000, seed=1, row_group_rows=3_000)
    summary = train_parquet(train, folder / "model", target="species", epochs=1, batch_size=256, device="cpu")
    rows = write_synth_parquet(folder / "new.parquet", rows=5_003, seed=2, row_group_rows=2_000)
    return load_model(summary["model_dir"]), rows


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_streaming_equals_in_memory(model_and_input, tmp_path, suffix):
    model, rows = model_and_input
    summary = predict_file(model, rows, tmp_path / f"out.{suffix}", batch_rows=700)  # 8 uneven batches
    assert summary["row_count"] == 5_003 and summary["batches"] == 8
    streamed = pd.read_parquet(summary["output_path"]) if suffix == "parquet" else pd.read_csv(summary["output_path"])
    frame = pd.read_parquet(rows)
    assert list(streamed.columns[:5]) == list(frame.columns)
    np.testing.assert_array_equal(streamed["prediction"].astype(str).to_numpy(), model.predict(frame))
    proba = streamed[[f"proba_{label}" for label in model.labels]].to_numpy()
    np.testing.assert_allclose(proba, model.predict_proba(frame), atol=1e-6)
    np.testing.assert_allclose(streamed["petal_width"], frame["petal_width"])


def test_regression_and_csv_input(tmp_path):
    from labline.data.spec import DatasetSpec
    from labline.models.artifact import save_torch_model
    from labline.models.preprocess import build_preprocessor
    from labline.models.torch_train import build_model

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    frame["y"] = frame["a"] * 2
    spec = DatasetSpec(name="toy", target="y", numeric=["a", "b"], task="regression")
    net, _ = build_model(2, [4], 1, torch.device("cpu"))
    save_torch_model(
        tmp_path / "m",
        net,
        build_preprocessor(spec).fit(frame),
        {"n_features": 2, "hidden_sizes": [4], "n_outputs": 1},
        spec,
        [],
        {"target_mean": 5.0, "target_scale": 2.0},
    )
    model = load_model(tmp_path / "m")
    frame[["a", "b"]].to_csv(tmp_path / "in.csv", index=False)
    summary = predict_file(model, tmp_path / "in.csv", tmp_path / "out.parquet", batch_rows=64)
    out = pd.read_parquet(summary["output_path"])
    np.testing.assert_allclose(out["prediction"], model.predict(frame), rtol=1e-6)
    assert not out["prediction"].isna().any()


def test_bad_paths_are_named(model_and_input, tmp_path):
    model, rows = model_and_input
    with pytest.raises(ValueError, match=r"must end in one of \('.parquet', '.csv'\)"):
        predict_file(model, rows, tmp_path / "out.json")
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        predict_file(model, tmp_path / "missing.parquet", tmp_path / "out.parquet")
    with pytest.raises(ValueError, match="feature columns"):
        pd.DataFrame({"x": [1.0]}).to_parquet(tmp_path / "wrong.parquet")
        predict_file(model, tmp_path / "wrong.parquet", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()
