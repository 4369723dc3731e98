"""Drift statistics on the NYC Airbnb listings: false alarms measured over many seeds, and
detection of each kind of shift at a stated size, on both the small-window (tests) and the
large-window (distances) paths. Drift functions are called directly, no notebooks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labline.data.datasets import load_dataset
from labline.data.perturb import perturb
from labline.monitor.drift import (
    MISSING,
    NOT_ENOUGH,
    DriftConfig,
    detect_drift,
    numeric_drift,
    prediction_drift,
    rank_wasserstein,
)
from labline.monitor.health import MonitorConfig, assess, data_quality

SMALL, LARGE = 300, 1500  # window sizes on either side of DriftConfig.large_sample (1000)


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
        # Bonferroni keeps the chance of any flagged feature near alpha = 0.05 per window;
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
            expected = {"numeric": ("ks", "wasserstein"), "categorical": ("chi2", "jensen_shannon")}[found.kind]
            assert found.method == expected[size >= report.config.large_sample]
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


def test_bonferroni_level_and_effect_floor(airbnb):
    reference, pool, _ = airbnb
    shifted = perturb(pool.head(SMALL), ["latitude=+0.5sd"], seed=0)["latitude"]
    one = numeric_drift(reference["latitude"], shifted, "latitude", DriftConfig(), n_tests=1)
    eleven = numeric_drift(reference["latitude"], shifted, "latitude", DriftConfig(), n_tests=11)
    assert one.threshold == pytest.approx(0.05) and eleven.threshold == pytest.approx(0.05 / 11)
    assert eleven.p_value < eleven.threshold and eleven.drifted
    # The same significant test, under a floor larger than its effect, is not drift.
    floored = numeric_drift(reference["latitude"], shifted, "latitude", DriftConfig(numeric_floor=0.5), n_tests=11)
    assert floored.p_value < floored.threshold and floored.effect < 0.5 and not floored.drifted


def test_rank_wasserstein_is_scale_free_and_grows_with_the_shift():
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(size=5000), rng.normal(size=5000)
    assert rank_wasserstein(ref, ref) == pytest.approx(0.0, abs=1e-9)
    small, large = rank_wasserstein(ref, cur + 0.25), rank_wasserstein(ref, cur + 1.0)
    assert 0.03 < small < large < 0.5
    assert rank_wasserstein(ref * 1000, (cur + 0.25) * 1000) == pytest.approx(small, rel=1e-9)


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
