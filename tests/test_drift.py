"""Drift statistics on the NYC Airbnb listings, Census and synthetic Iris: false alarms measured
over many seeded windows, detection of each kind of shift on small and large windows, and which
alert rule fires. Drift functions are called directly, no notebooks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labline.data.datasets import load_dataset
from labline.data.perturb import perturb
from labline.models.sklearn_models import build_training_pipeline
from labline.monitor.alerts import AlertRule
from labline.monitor.drift import (
    MISSING,
    NOT_ENOUGH,
    OTHER,
    DriftConfig,
    categorical_test,
    decide,
    detect_drift,
    holm,
    numeric_test,
    prediction_drift,
    scaled_wasserstein,
)
from labline.monitor.health import MonitorConfig, assess, data_quality
from labline.monitor.importance import permutation_importance

SMALL, LARGE = 300, 1500


@pytest.fixture(scope="module")
def airbnb():
    """(reference rows, a disjoint pool drawn from the same distribution, spec)."""
    frame, spec = load_dataset("airbnb")
    order = np.random.default_rng(0).permutation(len(frame))
    return frame.iloc[order[:8000]].reset_index(drop=True), frame.iloc[order[8000:]].reset_index(drop=True), spec


def test_false_alarm_rate_over_many_seeds_stays_below_alpha(airbnb):
    reference, pool, spec = airbnb
    seeds = 40
    for size in (SMALL, LARGE):
        dataset_alarms = any_feature = features_flagged = features_tested = 0
        for seed in range(seeds):
            report = detect_drift(reference, pool.sample(size, random_state=seed), spec)
            dataset_alarms += report.dataset_drift
            any_feature += bool(report.drifted)
            features_flagged += len(report.drifted)
            features_tested += len(report.tested)
        print(
            f"window {size}: dataset drift {dataset_alarms}/{seeds}, any feature {any_feature}/{seeds}, "
            f"features {features_flagged}/{features_tested}"
        )
        assert features_tested == seeds * len(spec.features)
        # Holm keeps the chance of any flagged feature at most alpha = 0.05 per window;
        # 40 windows allow some sampling slack. Dataset drift needs a quarter of the features.
        assert any_feature / seeds <= 0.10, (size, any_feature)
        assert features_flagged / features_tested <= 0.02, (size, features_flagged)
        assert dataset_alarms == 0, (size, dataset_alarms)


SHIFTS = [
    ("latitude=+0.5sd", "latitude"),  # numeric shift of half a standard deviation
    ("minimum_nights=*2", "minimum_nights"),  # heavy-tailed column doubled
    ("room_type=mix:Shared room:0.2", "room_type"),  # shared rooms from about 2% to 20%
    ("neighbourhood_group=mix:Queens:0.35", "neighbourhood_group"),  # Queens from about 12% to 35%
    ("longitude=set:-75.0@0.2", "longitude"),  # a fifth of the rows outside NYC (1% alerts as data quality)
    ("reviews_per_month=missing:0.3", "reviews_per_month"),  # 30% more missing values
]


@pytest.mark.parametrize("shift,column", SHIFTS)
def test_each_kind_of_shift_is_detected_on_small_and_large_windows(airbnb, shift, column):
    reference, pool, spec = airbnb
    for size in (SMALL, LARGE):
        for seed in range(3):
            window = perturb(pool.sample(size, random_state=seed).reset_index(drop=True), [shift], seed=seed)
            report = detect_drift(reference, window, spec)
            found = {f.feature: f for f in report.features}[column]
            assert found.drifted, (shift, size, seed, found)
            assert found.method == {"numeric": "ks", "categorical": "chi2"}[found.kind]
            assert found.adjusted_p >= found.p_value  # the adjustment never makes a test more significant
            if "mix:" not in shift:  # resampling rows by category moves correlated columns too
                others = [f.feature for f in report.drifted if f.feature != column]
                assert len(others) <= 1, (shift, others)  # a one-column shift is not reported everywhere


def test_a_missing_column_and_out_of_bounds_rows_are_data_quality_problems(airbnb):
    reference, pool, spec = airbnb
    window = perturb(pool.head(SMALL), ["name=drop", "longitude=set:-75.0@0.05"], seed=1)
    report = detect_drift(reference, window, spec)
    assert {f.feature: f.status for f in report.features}["name"] == MISSING
    problems = {p["check"]: p for p in data_quality(window, spec, max_invalid_share=0.01)}
    assert problems["columns present"]["columns"] == ["name"]
    assert problems["range longitude"]["share"] == pytest.approx(0.05, abs=0.004)
    result = assess(reference, window, spec, config=MonitorConfig())
    assert "data_quality" in [a.kind for a in result.alerts]


def test_shifting_a_quarter_of_the_features_is_dataset_drift(airbnb):
    reference, pool, spec = airbnb
    shifts = ["latitude=+0.5sd", "availability_365=+0.5sd", "room_type=mix:Shared room:0.2"]
    report = detect_drift(reference, perturb(pool.head(SMALL), shifts, seed=2), spec)
    assert len(report.drifted) >= 3
    assert report.drifted_share >= 0.25 and report.dataset_drift and report.status == "drift"
    quiet = detect_drift(reference, perturb(pool.head(SMALL), shifts[:1], seed=2), spec)
    assert quiet.drifted and not quiet.dataset_drift  # one feature is reported, not dataset drift


def test_too_small_a_window_says_not_enough_data(airbnb):
    reference, pool, spec = airbnb
    report = detect_drift(reference, perturb(pool.head(20), ["latitude=+3sd"], seed=0), spec)
    assert {f.status for f in report.features} == {NOT_ENOUGH}
    assert report.status == NOT_ENOUGH and not report.dataset_drift and report.drifted_share == 0.0
    empty = assess(reference, pd.DataFrame(), spec)  # no request in the window yet
    assert empty.status == NOT_ENOUGH and not empty.alerts


def test_holm_adjustment_and_effect_floor(airbnb):
    # Holm by hand: sorted p times (m - rank), running maximum, capped at 1, in the input's order.
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.2, 0.9]) == pytest.approx([0.4, 0.9]) and holm([]) == []
    with pytest.raises(ValueError, match="p-values must lie in \\[0, 1\\]"):
        holm([0.5, 1.5])
    reference, pool, _ = airbnb
    shifted = perturb(pool.head(SMALL), ["latitude=+0.5sd"], seed=0)["latitude"]
    one = decide([numeric_test(reference["latitude"], shifted, "latitude", DriftConfig())], DriftConfig(), SMALL)[0]
    assert one.adjusted_p == one.p_value and one.drifted and one.effect == pytest.approx(0.5, abs=0.1)
    # The same significant test, under a floor larger than its effect, is not drift.
    config = DriftConfig(numeric_floor=0.9)
    floored = decide([numeric_test(reference["latitude"], shifted, "latitude", config)], config, SMALL)[0]
    assert floored.adjusted_p < config.alpha and floored.effect < 0.9 and not floored.drifted


def test_rare_categories_are_pooled_before_the_chi_square_test():
    reference = pd.Series(["a"] * 900 + ["b"] * 80 + [f"rare{i}" for i in range(20)])
    current = pd.Series(["a"] * 180 + ["b"] * 18 + ["rare0", "new"])
    result = categorical_test(reference, current, "c", DriftConfig())
    # At 200 rows the 20 rare categories (0.1% each) expect 0.2 rows: one pooled bin, not 20 cells.
    assert result.statistic < 3 and result.p_value > 0.2
    assert "categories not in the reference: ['new']" in result.detail
    assert OTHER == "(rare categories)"


def test_scaled_wasserstein_is_the_shift_in_reference_standard_deviations():
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(10, 4, size=5000), rng.normal(10, 4, size=5000)
    assert scaled_wasserstein(ref, ref) == pytest.approx(0.0, abs=1e-12)
    assert scaled_wasserstein(ref, cur + 4.0) == pytest.approx(1.0, abs=0.05)
    assert scaled_wasserstein(ref * 1000, (cur + 2.0) * 1000) == pytest.approx(scaled_wasserstein(ref, cur + 2.0))


def test_prediction_drift_numeric_and_categorical():
    rng = np.random.default_rng(4)
    reference = rng.normal(100, 20, size=3000)
    assert not prediction_drift(reference, rng.normal(100, 20, size=400)).drifted
    assert prediction_drift(reference, rng.normal(115, 20, size=400)).drifted
    labels = np.array(["a", "b"])
    assert prediction_drift(labels[rng.integers(0, 2, 2000)], labels[(rng.random(400) < 0.8).astype(int)]).drifted


def test_bad_input_is_named(airbnb):
    reference, pool, spec = airbnb
    with pytest.raises(ValueError, match="reference data lacks feature columns \\['latitude'\\]"):
        detect_drift(reference.drop(columns="latitude"), pool.head(100), spec)
    with pytest.raises(ValueError, match="alpha must be between 0 and 1"):
        DriftConfig(alpha=2)


def _fitted(reference: pd.DataFrame, spec, estimator: str):
    """A model trained on three quarters of the reference, its importance, and its answers on the last
    quarter (rows it did not train on, as labline monitor compares with: computed once)."""
    train, heldout = reference.iloc[: len(reference) * 3 // 4], reference.iloc[len(reference) * 3 // 4 :]
    model = build_training_pipeline(spec, estimator).fit(train[spec.features], train[spec.target])
    return model, permutation_importance(model, reference, spec), np.asarray(model.predict(heldout[spec.features]))


@pytest.fixture(scope="module")
def census():
    """Census split in two random halves: the reference with a logistic regression, and a pool."""
    frame, spec = load_dataset("census")
    order = np.random.default_rng(0).permutation(len(frame))
    half = len(frame) // 2
    reference = frame.iloc[order[:half]].reset_index(drop=True)
    pool = frame.iloc[order[half:]].reset_index(drop=True)
    return reference, pool, spec, *_fitted(reference, spec, "logreg")


def _assess(world, window):
    reference, _, spec, model, importance, predictions = world
    return assess(reference, window, spec, model=model, importance=importance, reference_predictions=predictions)


def test_census_ages_plus_15_years_alert_on_their_own(census):
    pool = census[1]
    for seed in range(3):
        result = _assess(census, perturb(pool.sample(2000, random_state=seed).reset_index(drop=True), ["age=+15"]))
        by_rule = {a.rule: a for a in result.alerts}
        assert by_rule[AlertRule.FEATURE_EFFECT].details["features"] == ["age"], result.alerts
        assert AlertRule.SHARE_OF_FEATURES not in by_rule and not result.drift.dataset_drift  # one feature of 14
        age = {f.feature: f for f in result.drift.features}["age"]
        assert age.effect == pytest.approx(15 / census[0]["age"].std(ddof=0), rel=0.1)  # 15 years in std
        assert age.adjusted_p < 1e-6 and result.status == "alert"


def test_census_same_distribution_small_windows_alarm_at_most_at_the_declared_rate(census):
    pool, windows = census[1], 40
    alarms = [_assess(census, pool.sample(200, random_state=1000 + seed)).rules for seed in range(windows)]
    fired = [r for r in alarms if r]
    print(f"census, 200 rows: {len(fired)} of {windows} same-distribution windows alarmed: {fired}")
    # alpha = 0.05 over the whole window (features and predictions, Holm): 2 of 40 expected at most;
    # the windows are seeded, so the count is fixed; 3 leaves room for a changed library's sampling.
    assert len(fired) <= 3


@pytest.fixture(scope="module")
def iris():
    """3,000 synthetic Iris rows as the reference, with a random forest trained on them."""
    from labline.data.iris_synth import SPEC
    from labline.data.synth import synth_frame

    reference, spec = synth_frame(3000, seed=0), SPEC("3000")
    return reference, None, spec, *_fitted(reference, spec, "random_forest")


def test_iris_clean_windows_are_quiet_and_a_petal_shift_is_caught(iris):
    from labline.data.synth import synth_frame

    reference = iris[0]
    quiet = [_assess(iris, synth_frame(200, seed=500 + seed)).rules for seed in range(10)]
    assert not any(quiet), quiet
    shift = f"petal_width=+{0.5 * reference['petal_width'].std():.6f}"  # half a standard deviation
    for seed in range(5):
        result = _assess(iris, perturb(synth_frame(200, seed=600 + seed), [shift]))
        drifted = [f.feature for f in result.drift.drifted]
        assert drifted == ["petal_width"] and AlertRule.IMPORTANT_FEATURE in result.rules, result.alerts
        assert iris[4]["petal_width"] >= MonitorConfig().important_share
