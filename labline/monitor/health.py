"""One monitoring verdict: data quality, feature drift, prediction drift and performance decay.

`assess(reference, current, spec, ...)` runs every check and turns what is wrong into alerts,
each naming the rule (`AlertRule`) that raised it:

- feature_effect: a feature drifted (drift.py: Holm-adjusted test) by at least a declared effect
  size (`numeric_effect` reference standard deviations, `categorical_effect` total variation), or
  its missing rate jumped;
- important_feature: a drifted feature carries at least `important_share` of the model's
  dependence on its inputs (importance.py);
- share_of_features: at least `drift.drift_share` of the tested features drifted;
- prediction_drift: the distribution of the model's outputs moved (tested in the features' family);
- data_quality: feature columns absent from production input, or more than `max_invalid_share`
  of rows outside a declared range or category (corrupted input);
- performance_decay: with at least `min_labels` labels, the model's error grew by more than
  `decay_tolerance` (relative) over its error on the training run's held-out rows.

A window below the drift test's minimum size gives "not enough data", not a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from labline.data.spec import DatasetSpec
from labline.glue import MonitorStatus
from labline.monitor.alerts import Alert, AlertRule
from labline.monitor.drift import MISSING, DriftConfig, DriftReport, FeatureDrift, detect_drift
from labline.monitor.importance import permutation_importance

HEALTHY, ALERT, NOT_ENOUGH = MonitorStatus.HEALTHY, MonitorStatus.ALERT, MonitorStatus.NOT_ENOUGH


@dataclass
class MonitorConfig:
    drift: DriftConfig = field(default_factory=DriftConfig)
    max_invalid_share: float = 0.01  # share of rows outside declared ranges/categories that alerts
    decay_tolerance: float = 0.1  # relative worsening of the error (or drop of accuracy) that alerts
    min_labels: int = 50  # fewer labels: performance is not judged
    numeric_effect: float = 0.3  # a drifted numeric feature moved this many reference std: alert on its own
    categorical_effect: float = 0.1  # a drifted categorical feature's total variation: alert on its own
    important_share: float = 0.2  # a drifted feature with this share of the model's importance: alert

    def __post_init__(self) -> None:
        if not 0 < self.important_share <= 1:
            raise ValueError(f"important_share must be in (0, 1], got {self.important_share}")
        if self.numeric_effect <= 0 or self.categorical_effect <= 0:
            raise ValueError(
                f"effect thresholds must be > 0, got numeric {self.numeric_effect}, "
                f"categorical {self.categorical_effect}"
            )


@dataclass
class MonitorResult:
    source: str
    model: str
    reference_rows: int
    current_rows: int
    drift: DriftReport
    prediction: FeatureDrift | None
    performance: dict | None
    quality: list[dict]
    alerts: list[Alert]
    predictions: np.ndarray | None = None  # current predictions (for plots)
    reference_predictions: np.ndarray | None = None
    importance: dict[str, float] | None = None  # each feature's share of the model's dependence
    config: MonitorConfig = field(default_factory=MonitorConfig)  # the thresholds the verdict used

    @property
    def rules(self) -> list[AlertRule]:
        """The rules that fired, in the order of the alerts."""
        return [a.rule for a in self.alerts if a.rule is not None]

    @property
    def status(self) -> MonitorStatus:
        if self.alerts:
            return ALERT
        return NOT_ENOUGH if not self.drift.enough_data else HEALTHY

    @property
    def healthy(self) -> bool:
        return not self.alerts

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {
            "status": self.status,
            "rules": [str(r) for r in self.rules],
            "source": self.source,
            "model": self.model,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "drift": self.drift.to_dict(),
            "prediction": asdict(self.prediction) if self.prediction else None,
            "performance": self.performance,
            "quality": self.quality,
            "alerts": [asdict(a) for a in self.alerts],
            "importance": self.importance,
            "rule_thresholds": {
                "numeric_effect": self.config.numeric_effect,
                "categorical_effect": self.config.categorical_effect,
                "important_share": self.config.important_share,
                "drift_share": self.config.drift.drift_share,
            },
        }


def data_quality(current: pd.DataFrame, spec: DatasetSpec, max_invalid_share: float) -> list[dict]:
    """Problems with production input itself, independent of any reference."""
    problems: list[dict] = []
    if current.empty:
        return problems
    missing = [c for c in spec.features if c not in current.columns]
    if missing:
        problems.append(
            {
                "check": "columns present",
                "columns": missing,
                "detail": f"feature columns absent from the input: {missing}",
            }
        )
    rows = max(len(current), 1)
    for column, (low, high) in spec.ranges.items():
        if column not in current.columns or column not in spec.features:
            continue
        values = pd.to_numeric(current[column], errors="coerce")
        outside = int(((values < low) | (values > high)).sum())
        if outside / rows > max_invalid_share:
            problems.append(
                {
                    "check": f"range {column}",
                    "share": outside / rows,
                    "detail": f"{outside} of {len(current)} rows outside {low}..{high} "
                    f"(observed {values.min():.6g}..{values.max():.6g})",
                }
            )
    for column, allowed in spec.categories.items():
        if column not in current.columns or column not in spec.features:
            continue
        values = current[column].dropna().astype(str)
        unknown = ~values.isin([str(a) for a in allowed])
        if unknown.sum() / rows > max_invalid_share:
            problems.append(
                {
                    "check": f"categories {column}",
                    "share": float(unknown.sum() / rows),
                    "detail": f"{int(unknown.sum())} rows with unknown values {sorted(values[unknown].unique())[:5]}",
                }
            )
    return problems


def performance(
    labels: pd.Series, predictions: np.ndarray, task: str, reference_metrics: dict, config: MonitorConfig
) -> dict | None:
    """The model's error on labelled production rows against its held-out error."""
    known = labels.notna().to_numpy()
    if known.sum() < config.min_labels:
        return {
            "rows": int(known.sum()),
            "decayed": False,
            "detail": f"{int(known.sum())} labels; need {config.min_labels} to judge performance",
        }
    y_true, y_pred = labels[known].to_numpy(), np.asarray(predictions)[known]
    if task == "regression":
        metric = "test_mae"
        value = float(np.mean(np.abs(y_true.astype(float) - y_pred.astype(float))))
        reference = reference_metrics.get(metric)
        decayed = reference is not None and value > reference * (1 + config.decay_tolerance)
    else:
        metric = "test_accuracy"
        value = float(np.mean(y_true.astype(str) == y_pred.astype(str)))
        reference = reference_metrics.get(metric)
        decayed = reference is not None and value < reference * (1 - config.decay_tolerance)
    detail = (
        f"{metric} {value:.4f} on {int(known.sum())} labelled rows vs {reference:.4f} held out "
        f"(tolerance {config.decay_tolerance:.0%})"
        if reference is not None
        else f"{metric} {value:.4f}; no reference {metric} recorded for the model"
    )
    return {
        "rows": int(known.sum()),
        "metric": metric,
        "current": value,
        "reference": reference,
        "decayed": bool(decayed),
        "detail": detail,
    }


def large_effect(feature: FeatureDrift, config: MonitorConfig) -> bool:
    """A drifted feature moved by at least the declared effect size, or its missing rate jumped
    (an absent column is a data-quality problem, not an effect)."""
    if not feature.drifted or feature.status == MISSING:
        return False
    jump = abs(feature.missing_rate_current - feature.missing_rate_reference) > config.drift.missing_rate_tolerance
    limit = config.categorical_effect if feature.kind == "categorical" else config.numeric_effect
    return jump or (feature.effect is not None and feature.effect >= limit)


def _describe(feature: FeatureDrift) -> str:
    if feature.effect is None or feature.adjusted_p is None:
        return f"{feature.feature} ({feature.detail})"
    return f"{feature.feature} (effect {feature.effect:.3g}, adjusted p {feature.adjusted_p:.2g})"


def drift_alerts(
    drift: DriftReport, importance: dict[str, float] | None, config: MonitorConfig, common: dict
) -> list[Alert]:
    """One alert per feature-drift rule that fired, naming the features that made it fire."""
    importance = importance or {}
    drifted = [f.feature for f in drift.drifted]
    large = [f for f in drift.drifted if large_effect(f, config)]
    weighty = [f for f in drift.drifted if importance.get(f.feature, 0.0) >= config.important_share]
    alerts = []
    if large:
        message = "large drift: " + "; ".join(_describe(f) for f in large)
        alerts.append((AlertRule.FEATURE_EFFECT, message, large))
    if weighty:
        shares = "; ".join(
            f"{_describe(f)} carries {importance[f.feature]:.0%} of the model's importance" for f in weighty
        )
        alerts.append((AlertRule.IMPORTANT_FEATURE, f"important feature drifted: {shares}", weighty))
    if drift.dataset_drift:
        message = (
            f"{len(drifted)} of {len(drift.tested)} features drifted "
            f"({drift.drifted_share:.0%} >= {config.drift.drift_share:.0%}): {drifted}"
        )
        alerts.append((AlertRule.SHARE_OF_FEATURES, message, drift.drifted))
    return [
        Alert.of(
            rule,
            message,
            {"features": [f.feature for f in why], "drifted": drifted, "share": drift.drifted_share},
            **common,
        )
        for rule, message, why in alerts
    ]


def assess(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: DatasetSpec,
    model=None,
    current_predictions: np.ndarray | None = None,
    labels: pd.Series | None = None,
    reference_metrics: dict | None = None,
    config: MonitorConfig | None = None,
    source: str = "",
    model_label: str = "",
    importance: dict[str, float] | None = None,
    reference_predictions: np.ndarray | None = None,
) -> MonitorResult:
    """Compare production input `current` with the model's training rows `reference`.

    `importance` and `reference_predictions` are computed from `model` when not given (pass them
    to assess many windows against one model without recomputing). Pass the model's answers on
    held-out rows as `reference_predictions` when there are some: on its own training rows a model's
    answers are more spread than on new rows, which reads as prediction drift."""
    config = config or MonitorConfig()
    quality = data_quality(current, spec, config.max_invalid_share)
    complete = all(c in current.columns for c in spec.features)
    if model is not None:
        if reference_predictions is None:
            reference_predictions = np.asarray(model.predict(reference))
        if importance is None:
            importance = permutation_importance(model, reference, spec)
        if current_predictions is None and complete and len(current):
            current_predictions = np.asarray(model.predict(current))
    outputs = None
    if reference_predictions is not None and current_predictions is not None:
        outputs = (reference_predictions, current_predictions)
    drift = detect_drift(reference, current, spec, config.drift, predictions=outputs)
    prediction = drift.prediction
    perf = None
    if labels is not None and current_predictions is not None:
        perf = performance(labels, current_predictions, spec.task, reference_metrics or {}, config)
    common = {"source": source, "model": model_label}
    alerts = []
    if quality:
        message = "; ".join(p["detail"] for p in quality)
        alerts.append(Alert.of(AlertRule.DATA_QUALITY, message, {"problems": quality}, **common))
    alerts += drift_alerts(drift, importance, config, common)
    if prediction is not None and prediction.drifted:
        alerts.append(
            Alert.of(
                AlertRule.PREDICTION_DRIFT,
                f"predictions drifted: {prediction.method} effect {prediction.effect:.3f} "
                f"(floor {prediction.threshold:.3g}), adjusted p {prediction.adjusted_p:.2g}",
                {"effect": prediction.effect, "p_value": prediction.p_value, "adjusted_p": prediction.adjusted_p},
                **common,
            )
        )
    if perf and perf.get("decayed"):
        alerts.append(Alert.of(AlertRule.PERFORMANCE_DECAY, perf["detail"], perf, **common))
    return MonitorResult(
        source,
        model_label,
        len(reference),
        len(current),
        drift,
        prediction,
        perf,
        quality,
        alerts,
        current_predictions,
        reference_predictions,
        importance,
        config,
    )
