"""The whole pipeline on Census (a subsample, few epochs), and a bad batch stopped before training."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from labline.data import census
from tests.fixtures import ROOT
from tests.fixtures.cli import run_cli

FAST = [
    "dataset=census",
    "explore.sample_rows=2000",
    "train_torch.epochs=3",
    "train_torch.batch_size=64",
    "train_sklearn.cv_folds=2",
    'train_sklearn.param_grid={"C": [1.0]}',
    "min_slice_count=20",
    "n_boot=100",
]


@pytest.fixture(scope="module")
def census_run(tmp_path_factory):
    from labline.env import run_metadata
    from runner.pipeline import run_pipeline
    from runner.spec import load_pipeline

    record = run_pipeline(
        load_pipeline(ROOT / "pipeline.yaml"),
        tmp_path_factory.mktemp("census-runs"),
        overrides=FAST,
        workers=2,
        metadata={"dataset": "census", **run_metadata(ROOT)},
    )
    assert record.manifest["status"] == "succeeded", json.dumps(
        {k: v.get("error") for k, v in record.manifest["steps"].items()}, default=str
    )
    return record


def scraps(record, step):
    return record.manifest["steps"][step]["scraps"]


def test_explore_validates_and_subsamples(census_run):
    explore = scraps(census_run, "explore")
    assert explore["checks_passed"] is True and explore["validation_failures"] == []
    assert explore["dataset"] == "census" and explore["row_count"] == 2000
    assert set(explore["class_counts"]) == {"<=50K", ">50K"} and sum(explore["class_counts"].values()) == 2000
    report = Path(explore["validation_report"]).read_text()
    assert "PASSED" in report and "| categories sex |" in report and "| duplicate rows |" in report
    for step in ("train_sklearn", "train_torch"):
        assert scraps(census_run, step)["test_accuracy"] > 0.75


@pytest.mark.parametrize("step,trainer", [("audit_sklearn", "train_sklearn"), ("audit_torch", "train_torch")])
def test_audit_rates_match_an_independent_computation(census_run, step, trainer):
    from labline.data.snapshot import read_snapshot, split_frames
    from labline.models.artifact import load_model

    audit = scraps(census_run, step)
    assert audit["model_sha256"] == scraps(census_run, trainer)["artifact_sha256"]
    model = load_model(scraps(census_run, trainer)["model_dir"])
    _, test = split_frames(read_snapshot(scraps(census_run, "explore")["snapshot_path"]))
    predicted = pd.Series(model.predict(test) == ">50K", index=test.index)
    actual = test["salary"] == ">50K"
    assert audit["audit_metrics"]["recall"] == pytest.approx(predicted[actual].mean())
    assert audit["audit_metrics"]["precision"] == pytest.approx(actual[predicted].mean())
    assert 0.5 < audit["audit_metrics"]["roc_auc"] <= 1.0

    by_metric = {(d["attribute"], d["group"], d["metric"]): d for d in audit["disparities"]}
    assert {a for a, _, _ in by_metric} == {"sex", "race"}
    assert {g for a, g, _ in by_metric if a == "sex"} == {"Female"}  # Male, the largest group, is the reference
    female, male = test["sex"] == "Female", test["sex"] == "Male"
    fpr = {g: predicted[mask & ~actual].mean() for g, mask in (("Female", female), ("Male", male))}
    ppr = {g: predicted[mask].mean() for g, mask in (("Female", female), ("Male", male))}
    d = by_metric[("sex", "Female", "fpr")]
    assert d["reference_group"] == "Male" and d["group_size"] == int(female.sum())
    assert d["value"] == pytest.approx(fpr["Female"]) and d["reference_value"] == pytest.approx(fpr["Male"])
    assert d["ratio"] == pytest.approx(fpr["Female"] / fpr["Male"])
    assert d["passed"] == (0.8 <= d["ratio"] <= 1.25)
    assert by_metric[("sex", "Female", "ppr")]["ratio"] == pytest.approx(ppr["Female"] / ppr["Male"])
    assert audit["audit_passed"] == all(x["passed"] for x in audit["disparities"] if x["judged"])
    failing = [
        f"{x['attribute']}={x['group']} {x['metric']}" for x in audit["disparities"] if x["judged"] and not x["passed"]
    ]
    card = Path(audit["model_card_path"]).read_text()
    for name in failing:
        assert name in card
    assert ("The bias audit FAILED" in card) == bool(failing)


def test_audit_slices_cover_every_categorical_value(census_run):
    from labline.data.snapshot import read_snapshot, split_frames

    audit = scraps(census_run, "audit_sklearn")
    _, test = split_frames(read_snapshot(scraps(census_run, "explore")["snapshot_path"]))
    table = pd.read_csv(audit["slices_path"], keep_default_na=False, na_values=[""])
    for feature in census.SPEC.categorical:
        rows = table[table["feature"] == feature]
        expected = set(test[feature].fillna("missing").astype(str))
        assert set(rows["value"]) == expected, feature
        assert rows["count"].sum() == len(test)
        assert (rows["small"] == (rows["count"] < 20)).all()
    judged = table[~table["small"] & table["f1"].notna()]
    worst = audit["worst_slice"]
    assert worst["f1"] == pytest.approx(judged["f1"].min())
    card = Path(audit["model_card_path"]).read_text()
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
    assert f"`{worst['feature']} = {worst['value']}`" in card and audit["model_sha256"] in card
    assert "1600 rows of `census`" in card and "400 held-out rows" in card


def write_census_format(rows: pd.DataFrame, path: Path) -> Path:
    rows.fillna("?").to_csv(path, index=False)
    path.write_text(path.read_text().replace(",", ", "))  # a space after each separator, as shipped
    return path


def test_a_bad_batch_stops_the_run_before_training(tmp_path):
    """An unknown category and a shifted age distribution: explore fails, nothing is trained."""
    rows = census.load()
    batch = rows.head(1200).copy()
    batch.loc[:9, "workclass"] = "Astronaut"
    batch["age"] = batch["age"] + 8
    path = write_census_format(batch, tmp_path / "batch.csv")
    reference = write_census_format(rows.iloc[1200:6000], tmp_path / "reference.csv")
    result = run_cli(
        "run",
        "--dataset",
        f"census:{path}",
        "-p",
        f"explore.reference_path={reference}",
        "--runs",
        str(tmp_path / "runs"),
        "--workers",
        "1",
    )
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "ValidationError" in output and "categories workclass" in output and "validation.md" in output
    manifest = json.loads(next((tmp_path / "runs").glob("*/manifest.json")).read_text())
    steps = manifest["steps"]
    assert steps["explore"]["status"] == "failed" and steps["explore"]["scraps"]["checks_passed"] is False
    assert steps["explore"]["scraps"]["validation_failures"] == ["categories workclass", "KS test age"]
    report = Path(steps["explore"]["scraps"]["validation_report"]).read_text()
    assert "against a reference of 4800 rows" in report and "| KL divergence sex |" in report
    assert all(steps[s]["status"] == "skipped" for s in ("train_sklearn", "train_torch", "audit_sklearn"))
    assert not list((tmp_path / "runs").glob("**/model/manifest.json"))  # no model was trained
