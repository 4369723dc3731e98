"""The default Iris pipeline end to end, asserting on what the notebooks glued."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from labline.models.artifact import load_model
from runner.scraps import to_frame


def test_every_step_succeeded_and_recorded(iris_run):
    m = iris_run.manifest
    assert m["status"] == "succeeded"
    assert set(m["steps"]) == {"explore", "train_sklearn", "train_torch", "infer", "audit_sklearn", "audit_torch"}
    for name, step in m["steps"].items():
        assert step["status"] == "succeeded", name
        assert Path(step["output_notebook"]).exists()
        assert step["seconds"] > 0
        assert Path(step["parameters"]["output_dir"]).is_relative_to(iris_run.path)
    assert m["packages"]["papermill"] and m["packages"]["torch"].startswith("2.13.0")
    assert "sha" in m["git"] and m["device"]
    on_disk = json.loads((iris_run.path / "manifest.json").read_text())
    assert (
        on_disk["steps"]["train_torch"]["scraps"]["test_accuracy"]
        == m["steps"]["train_torch"]["scraps"]["test_accuracy"]
    )


def test_explore_profiles_checks_and_snapshots(iris_run):
    scraps = iris_run.manifest["steps"]["explore"]["scraps"]
    assert scraps["row_count"] == 150
    assert scraps["class_counts"] == {"setosa": 50, "versicolor": 50, "virginica": 50}
    assert scraps["checks_passed"] is True
    snapshot = pd.read_parquet(scraps["snapshot_path"])
    assert (snapshot["split"] == "test").sum() == 30
    from labline.data.snapshot import fingerprint

    assert fingerprint(snapshot) == scraps["fingerprint"]
    assert (iris_run.path / "explore" / "artifacts" / "histograms.png").stat().st_size > 1000


def test_both_models_pass_on_the_same_held_out_rows(iris_run):
    steps = iris_run.manifest["steps"]
    sk, pt = steps["train_sklearn"]["scraps"], steps["train_torch"]["scraps"]
    assert sk["test_accuracy"] >= 0.9 and pt["test_accuracy"] >= 0.9
    assert sk["data_fingerprint"] == pt["data_fingerprint"] == steps["explore"]["scraps"]["fingerprint"]
    assert 0 < sk["cv_score"] <= 1 and set(sk["best_params"]) == {"C"}
    for scraps in (sk, pt):
        matrix = to_frame(scraps["confusion_matrix"])
        assert matrix.to_numpy().sum() == 30  # the 30 held-out rows, for both models
        assert abs(matrix.to_numpy().trace() / 30 - scraps["test_accuracy"]) < 1e-9
    curve = pt["loss_curve"]
    assert len(curve["train_loss"]) == 60 and curve["train_loss"][-1] < curve["train_loss"][0]


def test_saved_models_reload_and_agree_with_glued_accuracy(iris_run):
    steps = iris_run.manifest["steps"]
    snapshot = pd.read_parquet(steps["explore"]["scraps"]["snapshot_path"])
    test = snapshot[snapshot["split"] == "test"]
    for step in ("train_sklearn", "train_torch"):
        model = load_model(steps[step]["scraps"]["model_dir"])
        accuracy = float((model.predict(test) == test["species"].to_numpy()).mean())
        assert abs(accuracy - steps[step]["scraps"]["test_accuracy"]) < 1e-9, step
        assert model.sha256 == steps[step]["scraps"]["artifact_sha256"]


def test_infer_uses_saved_preprocessing(iris_run):
    scraps = iris_run.manifest["steps"]["infer"]["scraps"]
    predictions = pd.read_csv(scraps["predictions_path"])
    assert scraps["row_count"] == len(predictions) == 20
    assert set(predictions["prediction"]) <= {"setosa", "versicolor", "virginica"}
    proba = predictions[[c for c in predictions if c.startswith("proba_")]].to_numpy()
    assert abs(proba.sum(axis=1) - 1).max() < 1e-4
    assert list(to_frame(scraps["preview"])["prediction"]) == list(predictions["prediction"].head(10))


def test_audit_writes_a_filled_model_card(iris_run):
    scraps = iris_run.manifest["steps"]["audit_torch"]["scraps"]
    card = Path(scraps["model_card_path"]).read_text()
    for section in (
        "Model Details",
        "Intended Use",
        "Factors",
        "Metrics",
        "Evaluation Data",
        "Training Data",
        "Quantitative Analyses",
        "Ethical Considerations",
        "Caveats and Recommendations",
    ):
        assert f"## {section}" in card
    assert iris_run.run_id in card
    assert scraps["model_sha256"] == iris_run.manifest["steps"]["train_torch"]["scraps"]["artifact_sha256"]
    assert scraps["model_sha256"] in card
    slices = pd.read_csv(scraps["slices_path"])
    assert set(slices["feature"]) == {"sepal_length", "sepal_width", "petal_length", "petal_width"}
    assert slices["count"].groupby(slices["feature"]).sum().eq(30).all()
