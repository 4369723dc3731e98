"""Shared fixtures. One real Iris pipeline run (small parameters) serves every test that needs one.

Helper functions (run_cli, the service and runner helpers) live in tests/fixtures/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures import FAST_OVERRIDES, ROOT


@pytest.fixture(scope="session", autouse=True)
def isolated_state(tmp_path_factory):
    """Registry, request log and runs of the suite live in a temporary folder, never in the checkout."""
    state = tmp_path_factory.mktemp("labline-state")
    defaults = {
        "LABLINE_DB": f"sqlite:///{state / 'labline.db'}",
        "LABLINE_REQUEST_LOG": str(state / "requests.db"),
        "LABLINE_RUNS": str(state / "runs"),
        "LABLINE_DATA_DIRS": str(tmp_path_factory.getbasetemp()),  # tests' data files live in their tmp_path
    }
    saved = {k: os.environ.get(k) for k in defaults}
    os.environ.update({k: v for k, v in defaults.items() if not saved[k]})
    yield state
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def iris_run(tmp_path_factory):
    """A finished default-pipeline run on Iris; returns its RunRecord (do not modify its files)."""
    from labline.env import run_metadata
    from runner.pipeline import run_pipeline
    from runner.spec import load_pipeline

    runs = tmp_path_factory.mktemp("iris-runs")
    spec = load_pipeline(ROOT / "pipeline.yaml")
    record = run_pipeline(
        spec, runs, overrides=FAST_OVERRIDES, workers=2, metadata={"dataset": "iris", **run_metadata(ROOT)}
    )
    assert record.manifest["status"] == "succeeded", record.manifest
    return record


@pytest.fixture(scope="session")
def served_registry(iris_run, tmp_path_factory):
    """(url, {step: version}) of a registry holding the Iris run's models, shared by tests that do not move aliases."""
    from tests.fixtures.serve import make_registry  # scikit-learn and httpx: only for the service tests

    return make_registry(iris_run.manifest, tmp_path_factory.mktemp("serve-registry"))
