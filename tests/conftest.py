"""Shared fixtures. One real Iris pipeline run (small parameters) serves every test that needs one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Small but real: enough epochs for the PyTorch model to pass 0.9 on Iris.
FAST_OVERRIDES = ["train_torch.epochs=60", "train_sklearn.cv_folds=3"]


@pytest.fixture(scope="session", autouse=True)
def isolated_state(tmp_path_factory):
    """Registry, request log and runs of the suite live in a temporary folder, never in the checkout."""
    state = tmp_path_factory.mktemp("labline-state")
    defaults = {"LABLINE_DB": f"sqlite:///{state / 'labline.db'}", "LABLINE_REQUEST_LOG": str(state / "requests.db"),
                "LABLINE_RUNS": str(state / "runs")}
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
    record = run_pipeline(spec, runs, overrides=FAST_OVERRIDES, workers=2,
                          metadata={"dataset": "iris", **run_metadata(ROOT)})
    assert record.manifest["status"] == "succeeded", record.manifest
    return record


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    """Call `labline` as a user does, in a subprocess; returns the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "labline.cli", *args], cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
