"""Drift: has the distribution of what the model sees moved away from what it was trained on?

One test per feature, whatever the window's size: Kolmogorov-Smirnov for numeric columns,
chi-square for categorical ones (categories too rare to expect `min_expected` rows in the window
pooled into one, so sparse columns such as a country do not make the test anti-conservative).
The raw p-values of a window form one family, adjusted with Holm's method (`holm`), so a window
drawn from the reference distribution flags any feature with probability at most `alpha`.

A feature drifted when its adjusted p-value is below `alpha` **and** its effect size reaches a
floor (on large windows a trivial difference is significant; it is not drift). Effect sizes say
how far, in units a user reads:

- numeric: the Wasserstein distance over the reference's standard deviation (a shift of every
  value by one standard deviation is 1.0);
- categorical: the total variation distance, the share of rows that would have to change category.

Below `min_rows` non-missing values the verdict is "not enough data", never a guess; a change of
the missing-value rate beyond `missing_rate_tolerance` is drift in any window. Text columns are
compared through their length in words. Predictions are one more column (`prediction_drift`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import binomtest, chi2_contingency, ks_2samp, wasserstein_distance

from labline.data.spec import DatasetSpec

OK, DRIFT, NOT_ENOUGH, MISSING = "ok", "drift", "not enough data", "missing column"
OTHER = "(rare categories)"  # the pooled bin of categories too rare to test one by one


@dataclass
class DriftConfig:
    """Thresholds of the drift tests; the defaults are measured in tests/test_drift.py and
    benchmarks/drift_alerts.py."""

    min_rows: int = 50  # fewer non-missing values in the window: "not enough data"
    alpha: float = 0.05  # false alarm rate of a whole window, Holm-adjusted over its tests
    numeric_floor: float = 0.1  # smallest Wasserstein / reference std a significant KS test may flag
    categorical_floor: float = 0.05  # smallest total variation a significant chi-square may flag
    min_expected: float = 5.0  # categories expecting fewer rows in the window are pooled for chi-square
    missing_rate_tolerance: float = 0.1  # absolute change in the share of missing values
    drift_share: float = 0.25  # dataset drift when at least this share of tested features drifted

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be between 0 and 1, got {self.alpha}")
        if not 0 < self.drift_share <= 1:
            raise ValueError(f"drift_share must be in (0, 1], got {self.drift_share}")
        if self.min_rows < 2:
            raise ValueError(f"min_rows must be at least 2, got {self.min_rows}")
        if self.numeric_floor < 0 or self.categorical_floor < 0:
            raise ValueError(
                f"effect floors must be >= 0, got numeric {self.numeric_floor}, categorical {self.categorical_floor}"
            )


@dataclass
class FeatureDrift:
    feature: str
    kind: str  # numeric, categorical, text, prediction
    status: str  # ok, drift, not enough data, missing column
    method: str = ""  # ks, chi2
    statistic: float | None = None  # KS D or chi-square
    p_value: float | None = None  # the test's own p-value
    adjusted_p: float | None = None  # Holm-adjusted over the window's tests
    effect: float | None = None  # Wasserstein / reference std, or total variation distance
    threshold: float | None = None  # the effect floor the decision compared against
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
    prediction: FeatureDrift | None = None  # the model's outputs, tested in the same family

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


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: the family of tests keeps one false alarm rate, uniformly more
    powerful than Bonferroni. Returns the adjusted p-values in the input's order."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return []
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    scaled = np.maximum.accumulate((p.size - np.arange(p.size)) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(scaled, 1.0)
    return adjusted.tolist()


def scaled_wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """Wasserstein distance in reference standard deviations (in the column's own units when the
    reference is constant): a shift of every value by one standard deviation gives 1.0."""
    std = float(np.std(reference))
    return float(wasserstein_distance(reference, current)) / (std if std > 0 else 1.0)


def pooled_counts(reference: pd.Series, current: pd.Series, window_rows: int, min_expected: float) -> pd.DataFrame:
    """Reference and current counts per category, categories expecting fewer than `min_expected`
    rows in the window (at the reference's share) pooled into OTHER; unseen categories pool there too."""
    counts = pd.DataFrame({"reference": reference, "current": current}).fillna(0.0)
    expected = counts["reference"] / max(counts["reference"].sum(), 1.0) * window_rows
    rare = expected < min_expected
    if rare.any():
        pooled = counts[rare].sum().rename(OTHER)
        counts = pd.concat([counts[~rare], pooled.to_frame().T])
    return counts[counts.sum(axis=1) > 0]


def total_variation(counts: pd.DataFrame) -> float:
    """Half the L1 distance between the two columns' shares: 0 identical, 1 disjoint."""
    shares = counts / counts.sum()
    return float(0.5 * np.abs(shares["reference"] - shares["current"]).sum())


def _missing(series: pd.Series) -> float:
    return float(series.isna().mean()) if len(series) else 0.0


def _start(name: str, kind: str, reference: pd.Series, current: pd.Series, ref_rows: int, cur_rows: int, config):
    """A result before testing; "not enough data" when either side has fewer than min_rows values."""
    result = FeatureDrift(
        name,
        kind,
        NOT_ENOUGH,
        reference_rows=ref_rows,
        current_rows=cur_rows,
        missing_rate_reference=_missing(reference),
        missing_rate_current=_missing(current),
    )
    if cur_rows < config.min_rows or ref_rows < config.min_rows:
        result.detail = f"{cur_rows} current and {ref_rows} reference values; need {config.min_rows}"
    return result


def numeric_test(
    reference: pd.Series, current: pd.Series, name: str, config: DriftConfig, kind: str = "numeric"
) -> FeatureDrift:
    """KS test and scaled Wasserstein effect of one numeric column (or predictions); no verdict yet."""
    ref = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype=float)
    cur = pd.to_numeric(current, errors="coerce").dropna().to_numpy(dtype=float)
    result = _start(name, kind, reference, current, len(ref), len(cur), config)
    if not result.detail:
        test = ks_2samp(ref, cur)
        result.method, result.statistic, result.p_value = "ks", float(test.statistic), float(test.pvalue)
        result.effect, result.threshold = scaled_wasserstein(ref, cur), config.numeric_floor
    return result


def categorical_test(reference: pd.Series, current: pd.Series, name: str, config: DriftConfig) -> FeatureDrift:
    """Chi-square test (rare categories pooled) and total variation of one categorical column."""
    ref, cur = _string_counts(reference), _string_counts(current)
    result = _start(name, "categorical", reference, current, int(ref.sum()), int(cur.sum()), config)
    if result.detail:
        return result
    unseen = sorted(set(cur.index) - set(ref.index))
    if unseen:
        result.detail = f"categories not in the reference: {unseen[:5]}"
    counts = pooled_counts(ref, cur, result.current_rows, config.min_expected)
    result.method, result.threshold, result.effect = "chi2", config.categorical_floor, total_variation(counts)
    if len(counts) < 2:
        result.statistic, result.p_value = 0.0, 1.0
    else:
        test = chi2_contingency(counts.to_numpy().T)
        result.statistic, result.p_value = float(test.statistic), float(test.pvalue)
    return result


def decide(results: list[FeatureDrift], config: DriftConfig, window_rows: int) -> list[FeatureDrift]:
    """The verdict of a window's tests as one family: Holm-adjusted p below alpha and an effect at
    the floor is drift; then the missing-rate check. Untested results keep their status."""
    tested = [r for r in results if r.p_value is not None]
    for result, adjusted in zip(tested, holm([r.p_value for r in tested])):
        result.adjusted_p = adjusted
        result.status = DRIFT if adjusted < config.alpha and result.effect >= result.threshold else OK
    for result in results:
        if result.status != MISSING:
            _missing_rate_drift(result, config, window_rows, len(results))
    return results


def _string_counts(series: pd.Series) -> pd.Series:
    """Counts per value, keyed by the value as text (so 1 and "1" are one category)."""
    counts = series.value_counts(dropna=True)
    counts.index = counts.index.astype(str)
    return counts.groupby(level=0).sum().astype(float)


def _missing_rate_drift(result: FeatureDrift, config: DriftConfig, window_rows: int, n_tests: int) -> FeatureDrift:
    """A jump in missing values is drift whatever the values do: larger than the tolerance and
    significant (binomial test against the reference rate, Bonferroni over the window's tests)."""
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


def _feature_test(reference: pd.DataFrame, current: pd.DataFrame, column: str, spec: DatasetSpec, config):
    kind = "text" if column in spec.text else "categorical" if column in spec.categorical else "numeric"
    if column not in current.columns:
        # An empty window (no requests yet) has no columns at all: nothing to judge, not a schema problem.
        status, detail = (
            (MISSING, "column absent from the current data")
            if len(current)
            else (NOT_ENOUGH, f"0 current values; need {config.min_rows}")
        )
        return FeatureDrift(column, kind, status, reference_rows=int(reference[column].notna().sum()), detail=detail)
    if kind == "categorical":
        return categorical_test(reference[column], current[column], column, config)
    if kind == "text":
        return numeric_test(word_counts(reference[column]), word_counts(current[column]), column, config, kind)
    return numeric_test(reference[column], current[column], column, config)


def output_test(reference: np.ndarray | pd.Series, current: np.ndarray | pd.Series, config: DriftConfig):
    """The model's outputs as one more column: numeric for regression, label frequencies otherwise."""
    ref, cur = pd.Series(np.asarray(reference)), pd.Series(np.asarray(current))
    if pd.api.types.is_numeric_dtype(ref) and pd.api.types.is_numeric_dtype(cur):
        return numeric_test(ref, cur, "prediction", config, kind="prediction")
    result = categorical_test(ref, cur, "prediction", config)
    result.kind = "prediction"
    return result


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: DatasetSpec,
    config: DriftConfig | None = None,
    features: list[str] | None = None,
    predictions: tuple[np.ndarray, np.ndarray] | None = None,
) -> DriftReport:
    """Test every feature of `spec` (or `features`) in `current` against `reference`, and the
    model's outputs when `predictions` (reference, current) are given, as one Holm family.

    Example:
        >>> report = detect_drift(train_rows, this_week_rows, spec)
        >>> report.dataset_drift, [(f.feature, f.adjusted_p, f.effect) for f in report.drifted]
    """
    config = config or DriftConfig()
    columns = list(features or spec.features)
    unknown = [c for c in columns if c not in reference.columns]
    if unknown:
        raise ValueError(f"reference data lacks feature columns {unknown}; it has {list(reference.columns)}")
    results = [_feature_test(reference, current, column, spec, config) for column in columns]
    prediction = output_test(*predictions, config) if predictions is not None else None
    decide(results + ([prediction] if prediction else []), config, len(current))
    return DriftReport(results, config, prediction)


def prediction_drift(
    reference: np.ndarray | pd.Series, current: np.ndarray | pd.Series, config: DriftConfig | None = None
) -> FeatureDrift:
    """Drift of the model's outputs alone (a family of one test)."""
    config = config or DriftConfig()
    return decide([output_test(reference, current, config)], config, len(current))[0]
