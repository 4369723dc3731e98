"""The quick model a notebook trains for itself when the model it reads does not exist yet."""

from __future__ import annotations

from labline.data.snapshot import prepare_snapshot, split_frames
from labline.models.artifact import MANIFEST, load_model
from labline.models.quick_model import has_model, model_or_quick


def test_a_missing_model_is_replaced_by_a_quick_one_and_an_existing_one_is_used(tmp_path):
    missing = tmp_path / "runs" / "notebook" / "train_torch" / "model"
    path, note = model_or_quick(str(missing), "iris", tmp_path / "out" / "quick_model")
    assert path == (tmp_path / "out" / "quick_model").resolve() and has_model(path) and not has_model(missing)
    assert note.startswith(f"no model at {missing} yet") and str(path) in note
    model = load_model(path)
    assert model.kind == "sklearn" and model.metadata["quick_model"] is True
    frame, _ = prepare_snapshot("iris", "", 0.2, 42)
    _, test = split_frames(frame)  # the pipeline's split: the quick model never saw these rows
    assert (model.predict(test).astype(str) == test["species"].to_numpy()).mean() >= 0.9
    written = (path / MANIFEST).stat().st_mtime_ns
    again, note = model_or_quick(path, "iris", tmp_path / "elsewhere")
    assert again == path and note == f"model {path}" and (path / MANIFEST).stat().st_mtime_ns == written
    assert not (tmp_path / "elsewhere").exists()


def test_a_regression_data_set_gets_a_ridge_model(tmp_path):
    path, _ = model_or_quick("", "airbnb", tmp_path / "quick")
    model = load_model(path)
    assert model.metadata["estimator"] == "ridge" and model.spec.task == "regression"
