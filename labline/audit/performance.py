"""Overall metrics of a model on the held-out rows: what the audit glues as `audit_metrics`.

Classification: accuracy, precision, recall, F1 (for the positive class of a binary task, macro
averages otherwise) and ROC AUC from the predicted probabilities. Regression: MAE, RMSE, R².
A figure that cannot be computed (ROC AUC with one class present) is None, never a made-up 0.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)


def positive_class(labels: list[str], declared: str | None) -> str | None:
    """The class a binary audit reports rates for: the declared one, else the second label."""
    if declared is not None:
        if labels and str(declared) not in map(str, labels):
            raise ValueError(f"positive label {declared!r} is not one of the model's labels {labels}")
        return str(declared)
    return str(labels[1]) if len(labels) == 2 else None


def classification_overall(
    y_true, y_pred, proba: np.ndarray | None, labels: list[str], positive_label: str | None = None
) -> dict[str, float | None]:
    """Accuracy, precision, recall, F1 and ROC AUC; `proba` columns follow `labels`."""
    y_true = np.asarray(y_true, dtype=object).astype(str)
    y_pred = np.asarray(y_pred, dtype=object).astype(str)
    labels = [str(label) for label in labels]
    if positive_label is not None:
        kwargs = {"average": "binary", "pos_label": positive_label}
    else:
        kwargs = {"average": "macro", "labels": labels}
    metrics: dict[str, float | None] = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, zero_division=0, **kwargs)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0, **kwargs)),
        "f1": float(f1_score(y_true, y_pred, zero_division=0, **kwargs)),
        "roc_auc": None,
    }
    present = set(y_true)
    if proba is not None and len(present) > 1:
        proba = np.asarray(proba, dtype=float)
        if positive_label is not None:
            scores = proba[:, labels.index(positive_label)]
            metrics["roc_auc"] = float(roc_auc_score(y_true == positive_label, scores))
        elif present == set(labels):
            metrics["roc_auc"] = float(roc_auc_score(y_true, proba, multi_class="ovr", labels=labels))
    return metrics


def regression_overall(y_true, y_pred) -> dict[str, float]:
    """MAE, RMSE and R² of predicted against true values."""
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    return {
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(np.mean((y_true - y_pred) ** 2))),
        "r2": float(r2_score(y_true, y_pred)) if len(y_true) > 1 else None,
    }
