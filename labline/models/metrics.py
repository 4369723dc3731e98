"""Metrics glued by the trainers and read by compare, the audit and the registry gate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, mean_absolute_error, r2_score


def classification_metrics(y_true: Sequence, y_pred: Sequence, labels: Sequence[str]) -> dict:
    """Test accuracy, macro F1 and the confusion matrix (rows: true, columns: predicted)."""
    matrix = confusion_matrix(y_true, y_pred, labels=list(labels))
    return {
        "test_accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", labels=list(labels), zero_division=0)),
        "confusion_matrix": pd.DataFrame(matrix, index=list(labels), columns=list(labels)),
    }


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict:
    return {
        "test_mae": float(mean_absolute_error(y_true, y_pred)),
        "test_r2": float(r2_score(y_true, y_pred)),
        "test_rmse": float(np.sqrt(np.mean((np.asarray(y_true) - np.asarray(y_pred)) ** 2))),
    }
