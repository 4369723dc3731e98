"""The preprocessing every model shares, built from the data set's spec.

Fitted on training rows only and saved inside the artifact, so training, batch inference and
serving transform data with the very same fitted object.
"""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from labline.data.spec import DatasetSpec


def build_preprocessor(spec: DatasetSpec) -> ColumnTransformer:
    """Scale numeric columns, one-hot encode categorical ones (unknown categories ignored)."""
    transformers = []
    if spec.numeric:
        numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
        transformers.append(("numeric", numeric, list(spec.numeric)))
    if spec.categorical:
        categorical = Pipeline(
            [
                ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("categorical", categorical, list(spec.categorical)))
    for column in spec.text:
        from sklearn.feature_extraction.text import TfidfVectorizer

        transformers.append((f"text_{column}", TfidfVectorizer(max_features=200), column))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
