"""A data set declared once: columns, target, features, allowed values, cleaning.

Every other part (validation, preprocessing, the service's request schema, drift) reads the
same declaration, so a data set's rules live in one place.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

TASKS = ("classification", "regression")


@dataclass
class DatasetSpec:
    """The declaration of a tabular data set.

    Example:
        >>> spec = DatasetSpec(name="toy", target="y", numeric=["x"], categorical=[],
        ...                    task="classification", labels=["a", "b"])
        >>> spec.features
        ['x']
    """

    name: str
    target: str
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    task: str = "classification"
    labels: list[str] = field(default_factory=list)  # class names, in the model's class order
    positive_label: str | None = None  # binary tasks: the class whose rates the audit reports
    sensitive: list[str] = field(default_factory=list)  # attributes audited for bias
    text: list[str] = field(default_factory=list)  # free-text feature columns
    dtypes: dict[str, str] = field(default_factory=dict)  # column -> pandas dtype kind name
    ranges: dict[str, list[float]] = field(default_factory=dict)  # numeric column -> [low, high]
    categories: dict[str, list[str]] = field(default_factory=dict)  # allowed values
    missing_markers: list[str] = field(default_factory=list)  # e.g. "?" in Census
    max_missing_rate: float = 0.1
    min_rows: int = 1
    max_rows: int | None = None
    drop_columns: list[str] = field(default_factory=list)  # read but not used as features
    description: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        overlap = set(self.numeric) & set(self.categorical)
        if overlap:
            raise ValueError(f"columns declared both numeric and categorical: {sorted(overlap)}")
        if self.target in self.features:
            raise ValueError(f"target {self.target!r} is also declared as a feature")

    @property
    def features(self) -> list[str]:
        """Feature columns in the order models see them."""
        return [*self.numeric, *self.categorical, *self.text]

    @property
    def columns(self) -> list[str]:
        """Every column a raw batch must have."""
        return [*self.features, self.target]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetSpec:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown dataset spec fields {sorted(unknown)}; expected some of {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path) -> DatasetSpec:
        return cls.from_dict(json.loads(Path(path).read_text()))


def infer_spec(frame: pd.DataFrame, target: str, name: str = "custom") -> DatasetSpec:
    """Infer a spec from a frame: numeric vs categorical by dtype, ranges and categories observed.

    The task is classification when the target is non-numeric or has few distinct values.
    """
    import pandas as pd

    if target not in frame.columns:
        raise KeyError(f"target column {target!r} not found; the file has columns {list(frame.columns)}")
    y = frame[target]
    numeric_target = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    task = "regression" if numeric_target and y.nunique() > max(20, len(y) // 20) else "classification"
    numeric, categorical, ranges, categories, dtypes = [], [], {}, {}, {}
    for col in frame.columns:
        if col == target:
            continue
        series = frame[col]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            numeric.append(col)
            dtypes[col] = "float"
            ranges[col] = [float(series.min()), float(series.max())]
        else:
            categorical.append(col)
            dtypes[col] = "category"
            categories[col] = sorted(series.dropna().astype(str).unique().tolist())
    labels = sorted(y.dropna().astype(str).unique().tolist()) if task == "classification" else []
    dtypes[target] = "category" if task == "classification" else "float"
    return DatasetSpec(
        name=name,
        target=target,
        numeric=numeric,
        categorical=categorical,
        task=task,
        labels=labels,
        dtypes=dtypes,
        ranges=ranges,
        categories=categories,
        description=f"inferred from data with {len(frame)} rows",
    )
