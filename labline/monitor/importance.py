"""How much the model's answers depend on each feature, so that drift of a feature that carries
weight raises an alert on its own.

Measured on the artifact's own model by permutation on the reference rows: shuffle one feature,
count how much the predictions move (the share of labels that change for a classifier, the mean
absolute change over the predictions' standard deviation for a regressor). Why this and not the
estimator's `coef_` / `feature_importances_`: those exist for some estimators only (not k-NN, not
the PyTorch networks), are in units of the transformed columns (one-hot categories, TF-IDF words)
rather than the features the drift tests see, and coefficients depend on scaling. Permutation
needs only `predict`, no labels, and gives one number per declared feature for every model kind.
The shares sum to 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from labline.data.spec import DatasetSpec

SAMPLE_ROWS = 1000  # reference rows the importance is measured on (a fixed, seeded sample)


def prediction_change(before: np.ndarray, after: np.ndarray) -> float:
    """How far two prediction vectors differ: share of changed labels, or mean absolute change
    over the spread of `before` for numbers."""
    if np.issubdtype(np.asarray(before).dtype, np.number):
        spread = float(np.std(before)) or 1.0
        return float(np.mean(np.abs(np.asarray(after, float) - np.asarray(before, float)))) / spread
    return float(np.mean(np.asarray(before).astype(str) != np.asarray(after).astype(str)))


def permutation_importance(model, reference: pd.DataFrame, spec: DatasetSpec, seed: int = 0) -> dict[str, float]:
    """Each feature's share of the model's dependence on its inputs (shares sum to 1; all 0 when
    no shuffle moves any prediction). `model` needs only `predict(rows)`."""
    missing = [c for c in spec.features if c not in reference.columns]
    if missing:
        raise ValueError(f"reference rows lack feature columns {missing}; importance needs {spec.features}")
    rng = np.random.default_rng(seed)
    rows = reference.sample(min(SAMPLE_ROWS, len(reference)), random_state=seed).reset_index(drop=True)
    base = np.asarray(model.predict(rows))
    raw = {}
    for feature in spec.features:
        shuffled = rows.copy()
        shuffled[feature] = rows[feature].to_numpy()[rng.permutation(len(rows))]
        raw[feature] = prediction_change(base, np.asarray(model.predict(shuffled)))
    total = sum(raw.values())
    return {f: (v / total if total > 0 else 0.0) for f, v in raw.items()}
