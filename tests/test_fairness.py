"""Bias audit, overall metrics, slices and the model card, checked against hand computations.

The small fixed example (labels yes/no, positive `yes`):

    group A (6 rows): y_true 1 1 1 0 0 0, y_pred 1 1 0 1 0 0 -> tp 2, fn 1, fp 1, tn 2
    group B (5 rows): y_true 1 1 0 0 0,   y_pred 1 1 0 1 0   -> tp 2, fn 0, fp 1, tn 2
    group C (2 rows): y_true 0 0,         y_pred 0 1         -> tp 0, fn 0, fp 1, tn 1
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from labline.audit.fairness import audit_fairness, bootstrap_intervals, disparities, group_rates
from labline.audit.model_card import SECTIONS, ModelFacts, render_model_card
from labline.audit.performance import classification_overall, positive_class, regression_overall
from labline.audit.slices import regression_slice_metrics, slice_metrics, worst_slice

GROUPS = ["A"] * 6 + ["B"] * 5 + ["C"] * 2
Y_TRUE = [1, 1, 1, 0, 0, 0] + [1, 1, 0, 0, 0] + [0, 0]
Y_PRED = [1, 1, 0, 1, 0, 0] + [1, 1, 0, 1, 0] + [0, 1]


def names(bits):
    return np.array(["yes" if b else "no" for b in bits], dtype=object)


@pytest.fixture
def example():
    return pd.DataFrame({"group": GROUPS}), names(Y_TRUE), names(Y_PRED)


def test_group_rates_match_hand_computation(example):
    test, y_true, y_pred = example
    rates = group_rates(y_true, y_pred, test["group"], "yes", attribute="group").set_index("group")
    assert rates.loc["A", ["size", "tp", "fp", "fn", "tn"]].tolist() == [6, 2, 1, 1, 2]
    assert rates.loc["B", ["size", "tp", "fp", "fn", "tn"]].tolist() == [5, 2, 1, 0, 2]
    a, b, c = rates.loc["A"], rates.loc["B"], rates.loc["C"]
    assert a.tpr == pytest.approx(2 / 3) and a.fnr == pytest.approx(1 / 3) and a.fpr == pytest.approx(1 / 3)
    assert a.precision == pytest.approx(2 / 3) and a.ppr == pytest.approx(0.5) and a.prevalence == pytest.approx(0.5)
    assert b.tpr == 1.0 and b.fnr == 0.0 and b.fpr == pytest.approx(1 / 3)
    assert b.precision == pytest.approx(2 / 3) and b.ppr == pytest.approx(0.6) and b.prevalence == pytest.approx(0.4)
    # C has no positive rows: TPR and FNR are undefined, not 0.
    assert math.isnan(c.tpr) and math.isnan(c.fnr)
    assert c.fpr == 0.5 and c.precision == 0.0 and c.ppr == 0.5 and c.prevalence == 0.0


def test_disparities_against_the_largest_group(example):
    test, y_true, y_pred = example
    rates = group_rates(y_true, y_pred, test["group"], "yes", attribute="group")
    found = {(d["group"], d["metric"]): d for d in disparities(rates, min_group_size=3)}
    assert {d["reference_group"] for d in found.values()} == {"A"}
    # B over A: tpr 1/(2/3) = 1.5 fails; fpr 1.0, precision 1.0, ppr 0.6/0.5 = 1.2 pass; fnr 0/(1/3) = 0 fails.
    expected = {
        "tpr": (1.5, False),
        "fpr": (1.0, True),
        "precision": (1.0, True),
        "ppr": (1.2, True),
        "fnr": (0.0, False),
    }
    for metric, (ratio, passed) in expected.items():
        item = found[("B", metric)]
        assert item["ratio"] == pytest.approx(ratio), metric
        assert item["passed"] is passed, metric
        assert item["group_size"] == 5 and item["judged"] is True
    assert found[("B", "tpr")]["value"] == 1.0 and found[("B", "tpr")]["reference_value"] == pytest.approx(2 / 3)
    # C is too small to judge; its TPR is undefined, so its ratio is too.
    assert found[("C", "tpr")]["ratio"] is None and found[("C", "tpr")]["passed"] is False
    assert found[("C", "fpr")]["ratio"] == pytest.approx(1.5) and found[("C", "fpr")]["judged"] is False
    assert ("A", "tpr") not in found


def test_configured_reference_group_and_zero_reference_rate(example):
    test, y_true, y_pred = example
    rates = group_rates(y_true, y_pred, test["group"], "yes", attribute="group")
    found = {(d["group"], d["metric"]): d for d in disparities(rates, reference_group="B")}
    assert found[("A", "tpr")]["ratio"] == pytest.approx(2 / 3) and not found[("A", "tpr")]["passed"]
    # B's FNR is 0: A's FNR (1/3) over it is undefined, and fails; C's FNR is undefined too.
    assert found[("A", "fnr")]["ratio"] is None and found[("A", "fnr")]["passed"] is False
    with pytest.raises(ValueError, match="reference group 'Z' not among"):
        disparities(rates, reference_group="Z")


def test_audit_passes_only_when_every_judged_disparity_passes(example):
    test, y_true, y_pred = example
    audit = audit_fairness(test, y_true, y_pred, ["group"], "yes", min_group_size=3, n_boot=50)
    assert audit.reference_groups == {"group": "A"}
    assert audit.passed is False
    assert sorted(audit.failing) == ["group=B fnr 0.00", "group=B tpr 1.50"]
    fair = audit_fairness(test, y_true, y_true, ["group"], "yes", min_group_size=3, n_boot=50)
    # Perfect predictions: TPR 1 and FPR 0 everywhere; A's and B's ppr equal their prevalences 0.5 and 0.4.
    ppr = next(d for d in fair.disparities if d["group"] == "B" and d["metric"] == "ppr")
    assert ppr["ratio"] == pytest.approx(0.8) and ppr["passed"] is True
    assert fair.passed is True
    with pytest.raises(ValueError, match="not columns"):
        audit_fairness(test, y_true, y_pred, ["sex"], "yes")


def test_bootstrap_intervals_bracket_the_rates_and_shrink_with_size():
    rng = np.random.default_rng(1)

    def intervals(n):
        truth = rng.random(n) < 0.4
        pred = np.where(rng.random(n) < 0.8, truth, ~truth)
        table = bootstrap_intervals(names(truth), names(pred), ["g"] * n, "yes", n_boot=300, seed=3)
        rate = ((truth & pred).sum()) / truth.sum()
        return table.iloc[0], rate

    small, small_rate = intervals(40)
    large, large_rate = intervals(4000)
    assert small.tpr_low <= small_rate <= small.tpr_high
    assert large.tpr_low <= large_rate <= large.tpr_high
    assert (large.tpr_high - large.tpr_low) < (small.tpr_high - small.tpr_low) / 3
    same = bootstrap_intervals(names([1, 1, 0]), names([1, 1, 0]), ["g"] * 3, "yes", n_boot=20, seed=0).iloc[0]
    assert same.tpr_low == same.tpr_high == 1.0 and same.fpr_low == same.fpr_high == 0.0


def test_classification_overall_matches_hand_computation():
    y_true, y_pred = ["yes", "yes", "no", "no"], ["yes", "no", "no", "yes"]
    proba = np.array([[0.1, 0.9], [0.6, 0.4], [0.8, 0.2], [0.4, 0.6]])  # columns: no, yes
    m = classification_overall(y_true, y_pred, proba, ["no", "yes"], "yes")
    assert m["accuracy"] == 0.5 and m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5
    assert m["roc_auc"] == pytest.approx(0.75)  # 3 of the 4 (positive, negative) pairs are ordered right
    one_class = classification_overall(["no", "no"], ["no", "yes"], proba[:2], ["no", "yes"], "yes")
    assert one_class["roc_auc"] is None
    assert positive_class(["<=50K", ">50K"], None) == ">50K"
    assert positive_class(["a", "b", "c"], None) is None
    with pytest.raises(ValueError, match="not one of the model's labels"):
        positive_class(["a", "b"], "c")


def test_regression_overall_and_slices_match_hand_computation():
    m = regression_overall([1.0, 2.0, 3.0], [2.0, 2.0, 5.0])
    assert m["mae"] == pytest.approx(1.0) and m["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert m["r2"] == pytest.approx(1 - 5 / 2)
    slices = pd.DataFrame({"borough": ["a", "a", "b"]})
    table = regression_slice_metrics(slices, [1.0, 2.0, 3.0], [2.0, 2.0, 5.0], min_count=1)
    assert table.set_index("value")["mae"].to_dict() == {"a": 0.5, "b": 2.0}
    assert worst_slice(table, "mae", higher_is_worse=True)["value"] == "b"
    assert worst_slice(table, "mae")["value"] == "a"


def test_binary_slices_leave_f1_undefined_without_positives():
    slices = pd.DataFrame({"s": ["x", "x", "y", "y"]})
    table = slice_metrics(
        slices, ["no", "no", "yes", "no"], ["no", "no", "yes", "yes"], min_count=1, positive_label="yes"
    ).set_index("value")
    assert math.isnan(table.loc["x", "f1"]) and table.loc["x", "positives"] == 0
    assert table.loc["y", "f1"] == pytest.approx(2 / 3) and table.loc["y", "precision"] == 0.5
    assert worst_slice(table.reset_index(), "f1")["value"] == "y"


def test_model_card_is_filled_from_the_facts(example):
    test, y_true, y_pred = example
    audit = audit_fairness(test, y_true, y_pred, ["group"], "yes", min_group_size=3, n_boot=20)
    slices = slice_metrics(pd.DataFrame({"group": GROUPS}), y_true, y_pred, min_count=3, positive_label="yes")
    facts = ModelFacts(
        model_name="toy-sklearn",
        model_kind="sklearn",
        parameters={"C": 1.0},
        dataset="toy",
        dataset_description="thirteen hand-made rows",
        task="classification",
        labels=["no", "yes"],
        features=["group"],
        data_fingerprint="f" * 64,
        train_rows=100,
        test_rows=13,
        artifact_sha256="a" * 64,
        metrics={"f1": 0.625},
        slices=slices,
        worst_slice=worst_slice(slices),
        sensitive=["group"],
        disparities=audit.disparity_frame(),
        failing_disparities=audit.failing,
        run_id="run-1",
        target="label",
        positive_label="yes",
        group_rates=audit.rates,
        reference_groups=audit.reference_groups,
        min_group_size=3,
        min_slice_count=3,
        audit_passed=audit.passed,
    )
    card = render_model_card(facts)
    for section in SECTIONS:
        assert f"## {section}" in card
    assert "The bias audit FAILED" in card
    for failing in audit.failing:
        assert failing in card
    assert "`C=1.0`" in card and "a" * 64 in card and "run-1" in card and "positive class `yes`" in card
    assert "Groups too small to judge (under 3 rows): C" in card
    assert "reference group `A`" in card


def test_audit_notebook_on_a_regression_model(tmp_path, root):
    """The audit notebook on Airbnb prices: MAE, RMSE, R² overall, MAE per borough and room type."""
    from labline.data.datasets import load_dataset
    from labline.data.snapshot import assign_split, write_snapshot
    from labline.models.artifact import save_sklearn_model
    from labline.models.sklearn_models import build_training_pipeline
    from runner.execute import execute_step

    frame, spec = load_dataset("airbnb")
    frame = frame.sample(n=1500, random_state=0).reset_index(drop=True)
    snapshot = assign_split(frame, spec, 0.3, 0)
    write_snapshot(snapshot, tmp_path / "snapshot.parquet")
    (tmp_path / "spec.json").write_text(spec.to_json())
    train = snapshot[snapshot["split"] == "train"]
    model = build_training_pipeline(spec, "ridge").fit(train[spec.features], train[spec.target])
    sha = save_sklearn_model(tmp_path / "model", model, spec)
    outcome = execute_step(
        root / "notebooks" / "audit.ipynb",
        tmp_path / "audit.ipynb",
        {
            "model_dir": str(tmp_path / "model"),
            "data_path": str(tmp_path / "snapshot.parquet"),
            "spec_path": str(tmp_path / "spec.json"),
            "min_slice_count": 20,
            "output_dir": str(tmp_path / "out"),
        },
        cwd=root,
    )
    assert outcome.status == "succeeded", outcome.error
    scraps = outcome.scraps
    test = snapshot[snapshot["split"] == "test"]
    error = model.predict(test[spec.features]) - test[spec.target].to_numpy()
    assert scraps["audit_metrics"]["mae"] == pytest.approx(np.abs(error).mean())
    assert scraps["audit_metrics"]["rmse"] == pytest.approx(np.sqrt((error**2).mean()))
    slices = pd.read_csv(scraps["slices_path"])
    boroughs = slices[slices["feature"] == "neighbourhood_group"].set_index("value")
    by_borough = pd.Series(np.abs(error), index=test.index).groupby(test["neighbourhood_group"]).mean()
    assert boroughs["mae"].to_dict() == pytest.approx(by_borough.to_dict())
    assert set(slices[slices["feature"] == "room_type"]["value"]) == set(test["room_type"])
    judged = slices[~slices["small"]]
    assert scraps["worst_slice"]["mae"] == pytest.approx(judged["mae"].max())
    assert scraps["disparities"] == [] and scraps["audit_passed"] is True
    assert scraps["model_sha256"] == sha
    card = open(scraps["model_card_path"]).read()
    assert "**mae**" in card and "a number" in card and "## Caveats and Recommendations" in card
