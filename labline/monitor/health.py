"""One monitoring verdict: data quality, feature drift, prediction drift and performance decay.

`assess(reference, current, spec, ...)` runs every check and turns what is wrong into alerts:

- data_quality: feature columns absent from production input, or more than
  `max_invalid_share` of rows outside a declared range or category (corrupted input);
- dataset_drift: at least `drift.drift_share` of the features drifted (see drift.py);
- prediction_drift: the distribution of the model's outputs moved;
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
from labline.monitor.alerts import Alert
from labline.monitor.drift import DriftConfig, DriftReport, FeatureDrift, detect_drift, prediction_drift

HEALTHY, ALERT, NOT_ENOUGH = MonitorStatus.HEALTHY, MonitorStatus.ALERT, MonitorStatus.NOT_ENOUGH


@dataclass
class MonitorConfig:
    drift: DriftConfig = field(default_factory=DriftConfig)
    max_invalid_share: float = 0.01  # share of rows outside declared ranges/categories that alerts
    decay_tolerance: float = 0.1  # relative worsening of the error (or drop of accuracy) that alerts
    min_labels: int = 50  # fewer labels: performance is not judged


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
            "source": self.source,
            "model": self.model,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "drift": self.drift.to_dict(),
            "prediction": asdict(self.prediction) if self.prediction else None,
            "performance": self.performance,
            "quality": self.quality,
            "alerts": [asdict(a) for a in self.alerts],
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
) -> MonitorResult:
    """Compare production input `current` with the model's training rows `reference`."""
    config = config or MonitorConfig()
    quality = data_quality(current, spec, config.max_invalid_share)
    drift = detect_drift(reference, current, spec, config.drift)
    prediction, reference_predictions = None, None
    complete = all(c in current.columns for c in spec.features)
    if model is not None:
        reference_predictions = np.asarray(model.predict(reference))
        if current_predictions is None and complete and len(current):
            current_predictions = np.asarray(model.predict(current))
    if reference_predictions is not None and current_predictions is not None:
        prediction = prediction_drift(reference_predictions, current_predictions, config.drift)
    perf = None
    if labels is not None and current_predictions is not None:
        perf = performance(labels, current_predictions, spec.task, reference_metrics or {}, config)
    common = {"source": source, "model": model_label}
    alerts = []
    if quality:
        alerts.append(Alert("data_quality", "; ".join(p["detail"] for p in quality), {"problems": quality}, **common))
    if drift.dataset_drift:
        names = [f.feature for f in drift.drifted]
        alerts.append(
            Alert(
                "dataset_drift",
                f"{len(names)} of {len(drift.tested)} features drifted "
                f"({drift.drifted_share:.0%} >= {config.drift.drift_share:.0%}): {names}",
                {"drifted": names, "share": drift.drifted_share},
                **common,
            )
        )
    if prediction is not None and prediction.drifted:
        alerts.append(
            Alert(
                "prediction_drift",
                f"predictions drifted: {prediction.method} effect "
                f"{prediction.effect:.3f} (threshold {prediction.threshold:.3g})",
                {"effect": prediction.effect, "p_value": prediction.p_value},
                **common,
            )
        )
    if perf and perf.get("decayed"):
        alerts.append(Alert("performance_decay", perf["detail"], perf, **common))
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
    )
