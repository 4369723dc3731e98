"""Drift: has the distribution of what the model sees moved away from what it was trained on?

One test per feature, chosen by type and by the size of the current window:

- small windows (fewer than `large_sample` rows): a two-sample test, Kolmogorov-Smirnov for
  numeric columns and chi-square for categorical ones, at a significance level Bonferroni-
  corrected for the number of features tested (so the whole table keeps one false alarm rate),
  and only when the effect reaches a floor: a significant but negligible change is not drift;
- large windows: p-values flag every trivial difference there, so a distance is compared with
  a threshold instead: the Wasserstein distance between the two samples after mapping both
  through the reference's empirical CDF (scale-free, robust to heavy tails: 0 identical,
  about 0.14 for a shift of half a standard deviation of normal data), or the Jensen-Shannon
  distance (base 2, 0..1) between category frequencies;
- below `min_rows` non-missing values the verdict is "not enough data", never a guess;
- a change of the missing-value rate beyond `missing_rate_tolerance` is drift in any window.

The share of drifted features decides dataset drift. Text columns are compared through their
length in words. Predictions are one more numeric column (`prediction_drift`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import binomtest, chi2_contingency, ks_2samp

from labline.data.spec import DatasetSpec

OK, DRIFT, NOT_ENOUGH, MISSING = "ok", "drift", "not enough data", "missing column"


@dataclass
class DriftConfig:
    """Thresholds of the drift tests; the defaults are measured in tests/test_drift.py."""

    min_rows: int = 50  # fewer non-missing values in the window: "not enough data"
    large_sample: int = 1000  # from this many rows: distance thresholds instead of p-values
    alpha: float = 0.05  # family-wise false alarm rate, Bonferroni over the features tested
    numeric_floor: float = 0.02  # smallest rank-Wasserstein effect a significant KS test may flag
    categorical_floor: float = 0.05  # smallest Jensen-Shannon distance a significant chi-square may flag
    numeric_threshold: float = 0.05  # rank-Wasserstein distance flagged on large windows
    categorical_threshold: float = 0.1  # Jensen-Shannon distance flagged on large windows
    missing_rate_tolerance: float = 0.1  # absolute change in the share of missing values
    drift_share: float = 0.25  # dataset drift when at least this share of tested features drifted

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be between 0 and 1, got {self.alpha}")
        if not 0 < self.drift_share <= 1:
            raise ValueError(f"drift_share must be in (0, 1], got {self.drift_share}")
        if self.min_rows < 2:
            raise ValueError(f"min_rows must be at least 2, got {self.min_rows}")


@dataclass
class FeatureDrift:
    feature: str
    kind: str  # numeric, categorical, text
    status: str  # ok, drift, not enough data, missing column
    method: str = ""  # ks, chi2, wasserstein, jensen_shannon
    statistic: float | None = None  # KS D, chi-square, or the distance itself
    p_value: float | None = None
    effect: float | None = None  # rank-Wasserstein or Jensen-Shannon distance, always computed
    threshold: float | None = None  # the level the decision compared against
    reference_rows: int = 0
    current_rows: int = 0
    missing_rate_reference: float = 0.0
    missing_rate_current: float = 0.0
    detail: str = ""

    @property
    def drifted(self) -> bool:
        return self.status in (DRIFT, MISSING)

    @property
    def tested(self) -> bool:
        return self.status != NOT_ENOUGH


@dataclass
class DriftReport:
    features: list[FeatureDrift]
    config: DriftConfig = field(default_factory=DriftConfig)

    @property
    def tested(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.tested]

    @property
    def drifted(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.drifted]

    @property
    def drifted_share(self) -> float:
        return len(self.drifted) / len(self.tested) if self.tested else 0.0

    @property
    def enough_data(self) -> bool:
        return bool(self.tested)

    @property
    def dataset_drift(self) -> bool:
        return self.enough_data and self.drifted_share >= self.config.drift_share

    @property
    def status(self) -> str:
        if not self.enough_data:
            return NOT_ENOUGH
        return DRIFT if self.dataset_drift else OK

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(f) for f in self.features])

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "dataset_drift": self.dataset_drift,
            "drifted_share": self.drifted_share,
            "drifted": [f.feature for f in self.drifted],
            "config": asdict(self.config),
            "features": [asdict(f) for f in self.features],
        }


QUANTILES = np.linspace(0.0, 1.0, 1001)


def rank_wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """Wasserstein distance after mapping both samples through the reference's empirical CDF.

    Computed as the mean absolute difference of the two mapped samples' quantile functions on a
    grid of 1,001 levels (the 1-D Wasserstein distance is the L1 distance of quantile functions).
    """
    ref_sorted = np.sort(reference)

    def ecdf(values: np.ndarray) -> np.ndarray:  # mid-rank for ties, so a constant column maps to 0.5
        low = np.searchsorted(ref_sorted, values, side="left")
        high = np.searchsorted(ref_sorted, values, side="right")
        return (low + high) / (2.0 * len(ref_sorted))

    diff = np.quantile(ecdf(ref_sorted), QUANTILES) - np.quantile(ecdf(current), QUANTILES)
    return float(np.trapezoid(np.abs(diff), QUANTILES))


def _missing(series: pd.Series) -> float:
    return float(series.isna().mean()) if len(series) else 0.0


def numeric_drift(
    reference: pd.Series, current: pd.Series, name: str, config: DriftConfig, n_tests: int = 1, kind: str = "numeric"
) -> FeatureDrift:
    """Compare one numeric column (or predictions) between reference and current window."""
    ref = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype=float)
    cur = pd.to_numeric(current, errors="coerce").dropna().to_numpy(dtype=float)
    result = FeatureDrift(
        name,
        kind,
        NOT_ENOUGH,
        reference_rows=len(ref),
        current_rows=len(cur),
        missing_rate_reference=_missing(reference),
        missing_rate_current=_missing(current),
    )
    if len(cur) < config.min_rows or len(ref) < config.min_rows:
        result.detail = f"{len(cur)} current and {len(ref)} reference values; need {config.min_rows}"
        return _missing_rate_drift(result, len(current), config, n_tests)
    result.effect = rank_wasserstein(ref, cur)
    if len(cur) >= config.large_sample:
        drifted = _beyond_threshold(result, "wasserstein", config.numeric_threshold)
    else:
        test = ks_2samp(ref, cur)
        drifted = _significant(result, "ks", test.statistic, test.pvalue, config, n_tests, config.numeric_floor)
    result.status = DRIFT if drifted else OK
    return _missing_rate_drift(result, len(current), config, n_tests)


def categorical_drift(
    reference: pd.Series, current: pd.Series, name: str, config: DriftConfig, n_tests: int = 1
) -> FeatureDrift:
    """Compare one categorical column's frequencies; categories unseen in the reference count too."""
    ref, cur = _string_counts(reference), _string_counts(current)
    result = FeatureDrift(
        name,
        "categorical",
        NOT_ENOUGH,
        reference_rows=int(ref.sum()),
        current_rows=int(cur.sum()),
        missing_rate_reference=_missing(reference),
        missing_rate_current=_missing(current),
    )
    if result.current_rows < config.min_rows or result.reference_rows < config.min_rows:
        result.detail = (
            f"{result.current_rows} current and {result.reference_rows} reference values; need {config.min_rows}"
        )
        return _missing_rate_drift(result, len(current), config, n_tests)
    categories = sorted(set(ref.index) | set(cur.index))
    ref_counts = ref.reindex(categories, fill_value=0).to_numpy(dtype=float)
    cur_counts = cur.reindex(categories, fill_value=0).to_numpy(dtype=float)
    result.effect = float(jensenshannon(ref_counts, cur_counts, base=2))
    unseen = [c for c, n in zip(categories, ref_counts) if n == 0]
    if unseen:
        result.detail = f"categories not in the reference: {unseen[:5]}"
    if result.current_rows >= config.large_sample:
        drifted = _beyond_threshold(result, "jensen_shannon", config.categorical_threshold)
    elif len(categories) < 2:
        result.method, result.statistic, result.p_value = "chi2", 0.0, 1.0
        drifted = False
    else:
        test = chi2_contingency(np.vstack([ref_counts, cur_counts]))
        drifted = _significant(result, "chi2", test.statistic, test.pvalue, config, n_tests, config.categorical_floor)
    result.status = DRIFT if drifted else OK
    return _missing_rate_drift(result, len(current), config, n_tests)


def _beyond_threshold(result: FeatureDrift, method: str, threshold: float) -> bool:
    """Large windows: p-values flag everything, so the effect size itself is held to a threshold."""
    result.method, result.statistic, result.threshold = method, result.effect, threshold
    return result.effect > threshold


def _significant(
    result: FeatureDrift, method: str, statistic: float, p_value: float, config: DriftConfig, n_tests: int, floor: float
) -> bool:
    """Small windows: a test at alpha corrected for the features tested (Bonferroni), and an effect floor."""
    level = config.alpha / max(1, n_tests)
    result.method, result.statistic, result.p_value, result.threshold = method, float(statistic), float(p_value), level
    return result.p_value < level and result.effect >= floor


def _string_counts(series: pd.Series) -> pd.Series:
    """Counts per value, keyed by the value as text (so 1 and "1" are one category)."""
    counts = series.value_counts(dropna=True)
    counts.index = counts.index.astype(str)
    return counts.groupby(level=0).sum()


def _missing_rate_drift(result: FeatureDrift, window_rows: int, config: DriftConfig, n_tests: int) -> FeatureDrift:
    """A jump in missing values is drift whatever the values do: larger than the tolerance and
    significant (binomial test against the reference rate, at the corrected level)."""
    change = abs(result.missing_rate_current - result.missing_rate_reference)
    if window_rows < config.min_rows or change <= config.missing_rate_tolerance:
        return result
    missing = int(round(result.missing_rate_current * window_rows))
    expected = min(max(result.missing_rate_reference, 1e-9), 1 - 1e-9)
    if binomtest(missing, window_rows, expected).pvalue < config.alpha / max(1, n_tests):
        result.status = DRIFT
        note = f"missing rate {result.missing_rate_reference:.2f} -> {result.missing_rate_current:.2f}"
        result.detail = f"{result.detail}; {note}" if result.detail else note
    return result


def word_counts(series: pd.Series) -> pd.Series:
    """A text column as a number: words per value (missing stays missing)."""
    return pd.Series(
        [len(v.split()) if isinstance(v, str) else np.nan for v in series], index=series.index, dtype=float
    )


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: DatasetSpec,
    config: DriftConfig | None = None,
    features: list[str] | None = None,
) -> DriftReport:
    """Test every feature of `spec` (or `features`) in `current` against `reference`.

    Example:
        >>> report = detect_drift(train_rows, this_week_rows, spec)
        >>> report.dataset_drift, [f.feature for f in report.drifted]
    """
    config = config or DriftConfig()
    columns = list(features or spec.features)
    unknown = [c for c in columns if c not in reference.columns]
    if unknown:
        raise ValueError(f"reference data lacks feature columns {unknown}; it has {list(reference.columns)}")
    present = [c for c in columns if c in current.columns]
    n_tests = max(1, len(present))
    results = []
    for column in columns:
        kind = "text" if column in spec.text else "categorical" if column in spec.categorical else "numeric"
        if column not in current.columns:
            # An empty window (no requests yet) has no columns at all: nothing to judge, not a schema problem.
            status, detail = (
                (MISSING, "column absent from the current data")
                if len(current)
                else (NOT_ENOUGH, f"0 current values; need {config.min_rows}")
            )
            results.append(
                FeatureDrift(column, kind, status, reference_rows=int(reference[column].notna().sum()), detail=detail)
            )
        elif kind == "categorical":
            results.append(categorical_drift(reference[column], current[column], column, config, n_tests))
        elif kind == "text":
            results.append(
                numeric_drift(
                    word_counts(reference[column]), word_counts(current[column]), column, config, n_tests, kind="text"
                )
            )
        else:
            results.append(numeric_drift(reference[column], current[column], column, config, n_tests))
    return DriftReport(results, config)


def prediction_drift(
    reference: np.ndarray | pd.Series, current: np.ndarray | pd.Series, config: DriftConfig | None = None
) -> FeatureDrift:
    """Drift of the model's outputs: numeric for regression, label frequencies for classification."""
    config = config or DriftConfig()
    ref, cur = pd.Series(np.asarray(reference)), pd.Series(np.asarray(current))
    if pd.api.types.is_numeric_dtype(ref) and pd.api.types.is_numeric_dtype(cur):
        return numeric_drift(ref, cur, "prediction", config, n_tests=1, kind="prediction")
    result = categorical_drift(ref, cur, "prediction", config, n_tests=1)
    result.kind = "prediction"
    return result
