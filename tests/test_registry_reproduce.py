"""`labline reproduce`: the same parameters give identical metrics on Iris; changed data is refused."""

from __future__ import annotations

import json
from pathlib import Path

from labline.registry.reproduce import compare_metrics, reproduce_run, reproduction_overrides
from runner.records import list_runs
from runner.spec import load_pipeline
from tests.fixtures import ROOT
from tests.fixtures.cli import run_cli


def write_run(runs: Path, manifest: dict, run_id: str) -> dict:
    """Only the manifest is needed to reproduce a run: put an (edited) copy in a runs folder of our own."""
    copy = json.loads(json.dumps(manifest))
    copy["run_id"] = run_id
    (runs / run_id).mkdir(parents=True)
    (runs / run_id / "manifest.json").write_text(json.dumps(copy, indent=2))
    return copy


def test_overrides_carry_recorded_parameters_not_upstream_paths(iris_run):
    overrides = reproduction_overrides(iris_run.manifest, load_pipeline(ROOT / "pipeline.yaml"))
    assert overrides["train_torch.epochs"] == 60 and overrides["train_sklearn.cv_folds"] == 3
    assert overrides["explore.dataset"] == "iris" and overrides["train_torch.seed"] == 42
    assert not any(key.endswith((".data_path", ".model_dir", ".output_dir", ".run_id")) for key in overrides)


def test_reproduce_refuses_when_the_data_fingerprint_changed(iris_run, tmp_path):
    runs = tmp_path / "runs"
    stale = iris_run.manifest["steps"]["explore"]["scraps"]["fingerprint"]
    old = write_run(runs, iris_run.manifest, "20000101-000000-000000")
    old["steps"]["explore"]["scraps"]["fingerprint"] = "f" * 64
    (runs / old["run_id"] / "manifest.json").write_text(json.dumps(old))

    out = run_cli("reproduce", old["run_id"], "--runs", str(runs), "--workers", "1")
    assert out.returncode == 1
    assert "the data changed" in out.stderr and "f" * 64 in out.stderr and stale in out.stderr
    new = [m for m in list_runs(runs) if m["run_id"] != old["run_id"]]
    assert len(new) == 1 and new[0]["reproduces"] == old["run_id"] and new[0]["status"] == "interrupted"
    assert new[0]["steps"]["explore"]["status"] == "succeeded"
    assert all(
        body["status"] != "succeeded" and not body.get("scraps")
        for step, body in new[0]["steps"].items()
        if step != "explore"
    )


def test_reproduce_iris_gives_identical_metrics(iris_run, tmp_path):
    runs = tmp_path / "runs"
    old = write_run(runs, iris_run.manifest, iris_run.run_id)
    result = reproduce_run(old, load_pipeline(ROOT / "pipeline.yaml"), runs, workers=2)
    assert result.status == "succeeded" and result.new_run_id != old["run_id"]
    new = json.loads((Path(result.new_run_path) / "manifest.json").read_text())
    assert all(body["status"] == "succeeded" for body in new["steps"].values())  # executed, none reused
    compared = {(c.step, c.metric): c for c in result.comparisons}
    for step in ("train_sklearn", "train_torch"):
        for metric in ("test_accuracy", "macro_f1"):
            assert compared[(step, metric)].new == old["steps"][step]["scraps"][metric]
    assert result.identical, [vars(c) for c in result.differing]

    assert new["reproduces"] == old["run_id"] and new["steps"]["train_torch"]["parameters"]["epochs"] == 60
    old["steps"]["train_torch"]["scraps"]["test_accuracy"] += 0.01  # a run whose metric is not reproduced
    differing = [c for c in compare_metrics(old, new) if not c.identical]
    assert [(c.step, c.metric) for c in differing] == [("train_torch", "test_accuracy")]


def test_compared_metrics_leave_out_machine_measurements():
    manifest = {
        "steps": {
            "train": {
                "status": "succeeded",
                "scraps": {
                    "test_accuracy": 0.9,
                    "fit_seconds": 3.2,
                    "samples_per_second": 1e4,
                    "peak_memory_mb": 400.0,
                    "time_to_target": {"seconds": 0.07, "epoch": 12},
                    "audit_metrics": {"f1": 0.8},
                    "passed": True,
                },
            },
            "broken": {"status": "failed", "scraps": {"test_accuracy": 0.1}},
        }
    }
    from labline.registry.reproduce import recorded_metrics

    assert recorded_metrics(manifest) == {
        ("train", "test_accuracy"): 0.9,
        ("train", "time_to_target.epoch"): 12.0,
        ("train", "audit_metrics.f1"): 0.8,
    }
