"""The scikit-learn estimators a notebook can choose by name, and their default grids."""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline

from labline.data.spec import DatasetSpec
from labline.models.preprocess import build_preprocessor

CLASSIFIERS = {
    "logreg": lambda seed: LogisticRegression(max_iter=1000, random_state=seed),
    "mlp": lambda seed: MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=seed),
    "random_forest": lambda seed: RandomForestClassifier(n_estimators=100, random_state=seed),
    "knn": lambda seed: KNeighborsClassifier(),
}
REGRESSORS = {
    "random_forest": lambda seed: RandomForestRegressor(n_estimators=100, random_state=seed),
    "gradient_boosting": lambda seed: GradientBoostingRegressor(random_state=seed),
    "ridge": lambda seed: Ridge(),
}
DEFAULT_GRIDS: dict[str, dict[str, list[Any]]] = {
    "logreg": {"C": [0.1, 1.0, 10.0]},
    "mlp": {"alpha": [1e-4, 1e-2]},
    "random_forest": {"max_depth": [None, 5]},
    "knn": {"n_neighbors": [3, 5, 7]},
    "gradient_boosting": {"max_depth": [2, 3]},
    "ridge": {"alpha": [0.1, 1.0, 10.0]},
}


def make_estimator(name: str, task: str = "classification", seed: int = 0) -> BaseEstimator:
    """An unfitted estimator by name, with a message listing the choices when the name is wrong."""
    choices = CLASSIFIERS if task == "classification" else REGRESSORS
    if name not in choices:
        raise ValueError(f"unknown estimator {name!r} for {task}; choose one of {sorted(choices)}")
    return choices[name](seed)


def build_training_pipeline(spec: DatasetSpec, estimator: str, seed: int = 0) -> Pipeline:
    """Preprocessing + estimator as one Pipeline, so grid search refits preprocessing per fold."""
    return Pipeline([("preprocess", build_preprocessor(spec)), ("model", make_estimator(estimator, spec.task, seed))])


def pipeline_grid(estimator: str, grid: dict[str, list[Any]] | None) -> dict[str, list[Any]]:
    """Prefix a grid's keys for the `model` step; an empty grid means the estimator's default grid."""
    grid = grid if grid else DEFAULT_GRIDS.get(estimator, {})
    return {key if "__" in key else f"model__{key}": list(values) for key, values in grid.items()}
