"""Iris, the default data set: it ships with scikit-learn, so nothing is downloaded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labline.data.spec import DatasetSpec

if TYPE_CHECKING:  # scikit-learn and pandas load only when the data does (the CLI starts fast)
    import pandas as pd

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
LABELS = ["setosa", "versicolor", "virginica"]

SPEC = DatasetSpec(
    name="iris",
    target="species",
    numeric=FEATURES,
    task="classification",
    labels=LABELS,
    dtypes={**{f: "float" for f in FEATURES}, "species": "category"},
    # Physical bounds in centimetres: generous around the observed 0.1..7.9.
    ranges={f: [0.0, 30.0] for f in FEATURES},
    categories={"species": LABELS},
    max_missing_rate=0.0,
    min_rows=30,
    description="Fisher's Iris: 150 flowers, 4 measurements in cm, 3 species (50 each).",
    source="scikit-learn sklearn.datasets.load_iris (R. A. Fisher, 1936; UCI ML Repository)",
)


def load(arg: str | None = None) -> pd.DataFrame:
    from sklearn.datasets import load_iris

    raw = load_iris(as_frame=True)
    frame = raw.data.copy()
    frame.columns = FEATURES
    frame["species"] = [LABELS[i] for i in raw.target]
    return frame
