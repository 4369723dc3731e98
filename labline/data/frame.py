"""The one conversion from rows to a model's input frame, as the data set's declaration says.

Training (the snapshot), the library (LoadedModel), the service (single, batch, micro-batched),
replay, batch inference and the monitor all build their frames here, so a row gets the same
frame, dtype by dtype, whatever path it takes and whatever else is in its batch:

- numeric features: float64, missing as NaN;
- categorical features: pandas' string dtype (what a Parquet snapshot reads back), missing as NaN
  whether it arrived as None, NaN, pd.NA or a declared marker (Census's "?"). An all-None
  column of object dtype would keep None, which SimpleImputer(strategy="constant") takes for a
  value, not for missing: the row would be scored as an unknown category;
- text features: strings, missing as "" (a vectorizer has no missing value).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

from labline.data.spec import DatasetSpec

NUMERIC_DTYPE = np.dtype(np.float64)
TEXT_DTYPE = pd.StringDtype(na_value=np.nan)  # pandas 3's "str": categories and text, NaN for missing

Rows = pd.DataFrame | Sequence[Mapping[str, Any]]


def model_frame(spec: DatasetSpec, rows: Rows) -> pd.DataFrame:
    """`rows` (a frame, or records as dicts) as the model's input: `spec.features` in order, typed.

    A frame keeps its index; records get 0..n-1. A missing feature column, or a numeric column
    that holds text, is a ValueError naming it and what is expected.
    """
    if isinstance(rows, pd.DataFrame):
        columns = {c: _column(rows, c, spec) for c in spec.features}
        index = rows.index
    else:
        columns = {c: _values(rows, c, spec) for c in spec.features}
        index = None
    markers = set(spec.missing_markers)
    converted = {c: _typed(spec, c, values, markers) for c, values in columns.items()}
    return pd.DataFrame(converted, columns=pd.Index(spec.features), index=index)


def with_model_dtypes(spec: DatasetSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """A loaded data set with its feature columns converted as `model_frame` does; other columns kept.

    A numeric column that holds text is left as read: validation reports it by name, and the
    step stops before any model sees it.
    """
    out = frame.copy()
    present = [c for c in spec.features if c in frame.columns]
    for column in present:
        if column in spec.numeric and not pd.api.types.is_numeric_dtype(frame[column]):
            try:
                out[column] = _numeric(column, frame[column])
            except ValueError:
                continue
        else:
            out[column] = _typed(spec, column, frame[column], set(spec.missing_markers))
    return out


def _missing_columns(spec: DatasetSpec, present) -> ValueError:
    missing = [c for c in spec.features if not present(c)]
    return ValueError(f"input is missing feature columns {missing}; the model expects {spec.features}")


def _column(frame: pd.DataFrame, column: str, spec: DatasetSpec) -> pd.Series:
    if column not in frame.columns:
        raise _missing_columns(spec, frame.columns.__contains__)
    return frame[column]


def _values(records: Sequence[Mapping[str, Any]], column: str, spec: DatasetSpec) -> list:
    try:
        return list(map(itemgetter(column), records))
    except KeyError:  # a model for another schema (a shadow, a replay): refuse, never fill NaN
        raise _missing_columns(spec, lambda c: all(c in record for record in records)) from None


def _typed(spec: DatasetSpec, column: str, values: Any, markers: set[str]) -> Any:
    if column in spec.numeric:
        return _numeric(column, values)
    if not isinstance(values, pd.Series) and markers and not markers.isdisjoint(values):
        values = [np.nan if v in markers else v for v in values]
    strings = pd.array(values, dtype=TEXT_DTYPE)
    if isinstance(values, pd.Series) and markers:
        strings[np.asarray(strings.isin(list(markers)), dtype=bool)] = np.nan
    if column in spec.text:
        strings = strings.fillna("")
    return strings


def _numeric(column: str, values: Any) -> np.ndarray:
    """float64 values; None, NaN and pd.NA become NaN. A value that is not a number is refused."""
    if isinstance(values, pd.Series):
        if pd.api.types.is_numeric_dtype(values):
            return values.to_numpy(dtype=NUMERIC_DTYPE, na_value=np.nan)
        values = values.tolist()
    try:
        return np.array(values, dtype=NUMERIC_DTYPE)  # the service's payloads: floats and None
    except (TypeError, ValueError):
        pass
    try:
        return np.array([np.nan if v is pd.NA else v for v in values], dtype=NUMERIC_DTYPE)
    except (TypeError, ValueError):
        bad = next(v for v in values if not _is_number(v))
        raise ValueError(f"numeric feature {column!r} holds {bad!r}; expected a number or a missing value") from None


def _is_number(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, (str, bytes)):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
