"""`labline compare --sort` and the promotion gate agree on which way every metric is better.

The metrics are those the notebooks glue (read from the notebooks themselves, so a new one is
covered), the trainers' metric dictionaries, and the usual names of losses, errors and scores.
"""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from labline.cli import main
from labline.models.metrics import classification_metrics, regression_metrics
from labline.registry.gate import GatePolicy, evaluate
from tests.fixtures import ROOT
from tests.fixtures.versions import model_version

EXTRA = [
    "mae",
    "rmse",
    "mse",
    "r2",
    "loss",
    "log_loss",
    "val_loss",
    "fit_seconds",
    "error_rate",
    "test_error",
    "neg_mean_absolute_error",
    "accuracy",
    "f1",
]
LOWER = {
    "test_mae",
    "test_rmse",
    "mae",
    "rmse",
    "mse",
    "loss",
    "log_loss",
    "val_loss",
    "fit_seconds",
    "error_rate",
    "test_error",
    "peak_memory_mb",
}
HIGHER = {
    "test_accuracy",
    "macro_f1",
    "cv_score",
    "test_r2",
    "r2",
    "val_accuracy",
    "samples_per_second",
    "neg_mean_absolute_error",
    "accuracy",
    "f1",
}


def glued_names() -> list[str]:
    """Every name a notebook glues with a literal (or a literal tuple it loops over), plus the trainers' metrics."""
    names = set(EXTRA)
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                names.update(re.findall(r'sb\.glue\(\s*"(\w+)"', cell.source))
                for loop in re.findall(r"for name in \(([^)]*)\):\s*\n\s*sb\.glue\(name", cell.source):
                    names.update(re.findall(r'"(\w+)"', loop))
    names.update(regression_metrics([1.0, 2.0], [1.0, 2.5]))
    names.update(k for k in classification_metrics(["a", "b"], ["a", "b"], ["a", "b"]) if k != "confusion_matrix")
    return sorted(names - {"model_name"})  # the label of a comparison row, not a metric


def test_the_notebooks_glue_the_metrics_this_test_is_about():
    names = glued_names()
    assert {"test_accuracy", "macro_f1", "cv_score", "fit_seconds", "test_mae", "test_rmse", "test_r2"} <= set(names)
    assert "samples_per_second" in names and "peak_memory_mb" in names


def _write_run(runs, run_id: str, model: str, metric: str, value: float) -> None:
    manifest = {
        "run_id": run_id,
        "created": f"2026-12-02T10:00:0{run_id[-1]}",
        "status": "succeeded",
        "steps": {"train": {"status": "succeeded", "scraps": {"model_name": model, metric: value}}},
    }
    (runs / run_id).mkdir(parents=True)
    (runs / run_id / "manifest.json").write_text(json.dumps(manifest))


def _compare_best(runs, metric: str, capsys) -> str:
    assert main(["compare", "--runs", str(runs), "--sort", metric, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)[0]["model_name"]


def _gate_prefers_larger(metric: str) -> bool:
    held = model_version(1, {metric: 1.0})
    larger = model_version(2, {metric: 2.0})
    checks = evaluate(larger, held, "champion", GatePolicy(metric))
    return next(c for c in checks if c.rule == "metric").passed


@pytest.mark.parametrize("metric", glued_names())
def test_compare_sort_and_the_gate_agree(metric, tmp_path, capsys):
    runs = tmp_path / "runs"
    _write_run(runs, "run-1", "smaller", metric, 1.0)
    _write_run(runs, "run-2", "larger", metric, 2.0)
    compare_prefers_larger = _compare_best(runs, metric, capsys) == "larger"
    assert compare_prefers_larger == _gate_prefers_larger(metric), metric
    if metric in LOWER:
        assert not compare_prefers_larger, f"{metric}: lower is better"
    if metric in HIGHER:
        assert compare_prefers_larger, f"{metric}: higher is better"
