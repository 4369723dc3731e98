"""Metrics on slices of the held-out rows, so a model good on average but bad somewhere shows it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score


def per_class_metrics(y_true, y_pred, labels: list[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class."""
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    rows = []
    for label in labels:
        rows.append(
            {
                "class": label,
                "support": int((y_true == label).sum()),
                "precision": float(precision_score(y_true == label, y_pred == label, zero_division=0)),
                "recall": float(recall_score(y_true == label, y_pred == label, zero_division=0)),
                "f1": float(f1_score(y_true == label, y_pred == label, zero_division=0)),
            }
        )
    return pd.DataFrame(rows)


def slice_columns(frame: pd.DataFrame, numeric: list[str], categorical: list[str], n_bins: int = 3) -> pd.DataFrame:
    """One slicing column per feature: categorical values as they are, numeric cut into quantile bins."""
    slices = pd.DataFrame(index=frame.index)
    for col in categorical:
        slices[col] = frame[col].astype(object).where(frame[col].notna(), "missing").astype(str)
    for col in numeric:
        binned = pd.qcut(frame[col], q=n_bins, duplicates="drop")
        slices[col] = binned.astype(str)
    return slices


def slice_metrics(
    slices: pd.DataFrame, y_true, y_pred, min_count: int = 30, average: str = "macro", positive_label: str | None = None
) -> pd.DataFrame:
    """Per (feature, value): count, accuracy, precision, recall, F1; small slices flagged, not hidden."""
    y_true = pd.Series(np.asarray(y_true, dtype=object), index=slices.index)
    y_pred = pd.Series(np.asarray(y_pred, dtype=object), index=slices.index)
    kwargs = {"average": "binary", "pos_label": positive_label} if positive_label else {"average": average}
    rows = []
    for col in slices.columns:
        for value, index in slices.groupby(col, observed=True).groups.items():
            t, p = y_true.loc[index], y_pred.loc[index]
            row = {
                "feature": col,
                "value": str(value),
                "count": int(len(index)),
                "accuracy": float(accuracy_score(t, p)),
                "precision": float(precision_score(t, p, zero_division=0, **kwargs)),
                "recall": float(recall_score(t, p, zero_division=0, **kwargs)),
                "f1": float(f1_score(t, p, zero_division=0, **kwargs)),
                "small": bool(len(index) < min_count),
            }
            if positive_label is not None:
                # A slice with no positive rows and no positive predictions has no F1 to speak of:
                # undefined (NaN), so it cannot be picked as the worst slice with a made-up 0.
                positives, predicted = int((t == positive_label).sum()), int((p == positive_label).sum())
                row["positives"], row["predicted_positives"] = positives, predicted
                if positives == 0:
                    row["recall"] = float("nan")
                if predicted == 0:
                    row["precision"] = float("nan")
                if positives == 0 and predicted == 0:
                    row["f1"] = float("nan")
            rows.append(row)
    return pd.DataFrame(rows)


def regression_slice_metrics(slices: pd.DataFrame, y_true, y_pred, min_count: int = 30) -> pd.DataFrame:
    """Per (feature, value): count, MAE, RMSE and mean true and predicted values; small slices flagged."""
    y_true = pd.Series(np.asarray(y_true, dtype=float), index=slices.index)
    y_pred = pd.Series(np.asarray(y_pred, dtype=float), index=slices.index)
    rows = []
    for col in slices.columns:
        for value, index in slices.groupby(col, observed=True).groups.items():
            error = y_pred.loc[index] - y_true.loc[index]
            rows.append(
                {
                    "feature": col,
                    "value": str(value),
                    "count": int(len(index)),
                    "mae": float(error.abs().mean()),
                    "rmse": float(np.sqrt((error**2).mean())),
                    "mean_true": float(y_true.loc[index].mean()),
                    "mean_pred": float(y_pred.loc[index].mean()),
                    "small": bool(len(index) < min_count),
                }
            )
    return pd.DataFrame(rows)


def worst_slice(table: pd.DataFrame, metric: str = "f1", higher_is_worse: bool = False) -> dict:
    """The slice with the worst metric among slices large enough to judge (all if none are).

    Worst is the lowest value (F1) or, with `higher_is_worse`, the highest (MAE).
    """
    if table.empty:
        raise ValueError("no slices to choose the worst from: the audited rows have no features to slice by")
    defined = table[table[metric].notna()]
    if defined.empty:
        raise ValueError(f"no slice has a defined {metric}")
    candidates = defined[~defined["small"]] if (~defined["small"]).any() else defined
    row = candidates.sort_values([metric, "count"], ascending=[not higher_is_worse, False]).iloc[0]
    return {"feature": row["feature"], "value": row["value"], "count": int(row["count"]), metric: float(row[metric])}
