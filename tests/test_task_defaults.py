"""The default pipeline on any data set: the trainers' task-dependent parameters come from
labline/task_defaults.py unless the pipeline file or -p sets them; `labline run --dataset airbnb`
and a regression CSV run end to end with the default pipeline.yaml (small parameters)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from labline.task_defaults import TASK_PARAMETERS, for_dataset, pipeline_dataset, with_task_defaults
from runner.plan import step_parameters
from runner.records import list_runs
from runner.spec import load_pipeline
from tests.fixtures import ROOT
from tests.fixtures.cli import run_cli


def test_regression_defaults_fill_what_the_pipeline_leaves_unset():
    spec = load_pipeline(ROOT / "pipeline.yaml")
    params = step_parameters(with_task_defaults(spec, "regression"), ["dataset=airbnb", "train_torch.epochs=3"])
    assert params["train_sklearn"]["estimator"] == "random_forest"
    assert params["train_sklearn"]["param_grid"] == TASK_PARAMETERS["regression"]["param_grid"]
    assert params["train_torch"]["lr"] == TASK_PARAMETERS["regression"]["lr"]
    assert params["train_torch"]["epochs"] == 3  # -p wins over the task's default
    assert "estimator" not in params["explore"]  # only steps whose notebook declares the parameter
    iris = step_parameters(for_dataset(spec, []), [])  # pipeline.yaml names iris: classification
    assert iris["train_sklearn"]["estimator"] == "logreg" and iris["train_sklearn"]["param_grid"] == {
        "C": [0.1, 1.0, 10.0]
    }
    # A pipeline file that sets a parameter keeps its value: pipeline_airbnb.yaml's tuned trainers.
    airbnb = load_pipeline(ROOT / "pipeline_airbnb.yaml")
    airbnb.steps["train_sklearn"].parameters["estimator"] = "gradient_boosting"
    assert (
        step_parameters(with_task_defaults(airbnb, "regression"))["train_sklearn"]["estimator"] == "gradient_boosting"
    )
    assert pipeline_dataset(spec, ["explore.dataset=census", "target=y"]) == ("census", "y")
    with pytest.raises(ValueError, match="no pipeline defaults for task 'ranking'"):
        with_task_defaults(spec, "ranking")


def _manifest(runs) -> dict:
    (manifest,) = list_runs(runs)
    return manifest


def scraps(manifest: dict, step: str) -> dict:
    return manifest["steps"][step]["scraps"]


def test_run_dataset_airbnb_with_the_default_pipeline(tmp_path):
    runs = tmp_path / "runs"
    done = run_cli(
        "run",
        "--dataset",
        "airbnb",
        "--runs",
        str(runs),
        "--db",
        f"sqlite:///{tmp_path / 'l.db'}",
        "--workers",
        "2",
        "-p",
        "explore.sample_rows=800",
        "-p",
        'train_sklearn.param_grid={"n_estimators": [20], "max_features": [0.33]}',
        "-p",
        "train_torch.epochs=40",  # the default 10 epochs are for the full sample's 12,000 training rows
    )
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = _manifest(runs)
    assert manifest["status"] == "succeeded" and set(manifest["steps"]) == {
        "explore",
        "train_sklearn",
        "train_torch",
        "infer",
        "audit_sklearn",
        "audit_torch",
    }
    sklearn, torch = scraps(manifest, "train_sklearn"), scraps(manifest, "train_torch")
    assert sklearn["model_name"] == "sklearn-random_forest" and sklearn["task"] == "regression"
    torch_parameters = manifest["steps"]["train_torch"]["parameters"]
    assert (torch_parameters["lr"], torch_parameters["epochs"]) == (TASK_PARAMETERS["regression"]["lr"], 40)
    # Real prices on 160 held-out listings: both models explain a good share of the variance.
    for found in (sklearn, torch):
        assert 10 < found["test_mae"] < 60 and found["test_r2"] > 0.25, found
    assert "registered sklearn-random_forest" in done.stderr


def test_run_a_regression_csv_with_the_default_pipeline(tmp_path):
    rng = np.random.default_rng(0)
    rows = 400
    frame = pd.DataFrame(
        {
            "size": rng.uniform(20, 200, rows),
            "rooms": rng.integers(1, 6, rows).astype(float),
            "district": rng.choice(["north", "south", "east"], rows),
        }
    )
    frame["rent"] = (
        8 * frame["size"]
        + 40 * frame["rooms"]
        + frame["district"].map({"north": 300, "south": 0, "east": 150})
        + rng.normal(0, 30, rows)
    )
    path = tmp_path / "rents.csv"
    frame.to_csv(path, index=False)
    runs = tmp_path / "runs"
    done = run_cli(
        "run",
        "--dataset",
        str(path),
        "--target",
        "rent",
        "--runs",
        str(runs),
        "--no-register",
        "--only",
        "train_sklearn",
        "--only",
        "train_torch",
        "--workers",
        "2",
        "-p",
        'train_sklearn.param_grid={"n_estimators": [30]}',
        "-p",
        "train_torch.epochs=100",
        "-p",
        "train_torch.batch_size=32",
        "-p",
        "train_torch.lr=0.003",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = _manifest(runs)
    sklearn, torch = scraps(manifest, "train_sklearn"), scraps(manifest, "train_torch")
    assert scraps(manifest, "explore")["dataset"] == "rents"
    assert sklearn["model_name"] == "sklearn-random_forest" and sklearn["task"] == torch["task"] == "regression"
    assert sklearn["test_r2"] > 0.8 and torch["test_r2"] > 0.8, json.dumps([sklearn, torch], default=str)[:500]
