"""Model artifacts: saved with hashes, verified before anything is deserialised."""

from __future__ import annotations

import shutil

import pytest

from labline.data import load_dataset
from labline.data.snapshot import assign_split, split_frames
from labline.models.artifact import ArtifactError, load_model, save_sklearn_model
from labline.models.sklearn_models import build_training_pipeline


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    frame, spec = load_dataset("iris")
    train, test = split_frames(assign_split(frame, spec, 0.2, 0))
    pipeline = build_training_pipeline(spec, "logreg").fit(train[spec.features], train[spec.target])
    out = tmp_path_factory.mktemp("model") / "m"
    sha = save_sklearn_model(out, pipeline, spec, metadata={"seed": 0})
    return out, sha, pipeline, test


def test_round_trip_predicts_like_the_fitted_pipeline(saved):
    out, sha, pipeline, test = saved
    model = load_model(out)
    assert model.sha256 == sha and model.kind == "sklearn"
    assert list(model.predict(test)) == list(pipeline.predict(test[model.spec.features]))
    assert model.labels == ["setosa", "versicolor", "virginica"]


def test_tampered_file_is_refused_with_its_name(saved, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(saved[0], out)
    with open(out / "pipeline.skops", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactError, match="pipeline.skops.*SHA-256"):
        load_model(out)


def test_missing_file_is_refused_with_its_name(saved, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(saved[0], out)
    (out / "pipeline.skops").unlink()
    with pytest.raises(ArtifactError, match="pipeline.skops is missing"):
        load_model(out)


def test_missing_columns_name_what_is_expected(saved):
    model = load_model(saved[0])
    with pytest.raises(ValueError, match="missing feature columns.*petal_width"):
        model.predict(saved[3].drop(columns=["petal_width"]))
