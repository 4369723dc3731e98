"""`iris_synth:N`: N synthetic Iris rows (see labline.data.synth), for the pipeline at scale.

Through explore the N rows are held in memory and profiled, which suits up to a few million
rows; beyond that, write a file with `labline data synth` and train from it with
`python -m labline.models.torch_train`, which streams row groups.
"""

from __future__ import annotations

import pandas as pd

from labline.data.iris import FEATURES, LABELS
from labline.data.spec import DatasetSpec
from labline.data.synth import synth_frame

DEFAULT_ROWS = 100_000


def _rows(arg: str | None) -> int:
    if not arg:
        return DEFAULT_ROWS
    try:
        rows = int(arg.replace("_", ""))
    except ValueError:
        raise ValueError(f"iris_synth:N needs a whole number of rows, got {arg!r}") from None
    if rows < 30:
        raise ValueError(f"iris_synth:N needs at least 30 rows, got {rows}")
    return rows


def SPEC(arg: str | None = None) -> DatasetSpec:  # noqa: N802 - the registry's name for a spec
    rows = _rows(arg)
    return DatasetSpec(
        name="iris_synth",
        target="species",
        numeric=FEATURES,
        task="classification",
        labels=LABELS,
        dtypes={**{f: "float" for f in FEATURES}, "species": "category"},
        ranges={f: [0.0, 30.0] for f in FEATURES},
        categories={"species": LABELS},
        max_missing_rate=0.0,
        min_rows=30,
        description=f"{rows} synthetic Iris rows from per-class Gaussians fitted to the real measurements.",
        source="labline.data.synth (seed 0), fitted to scikit-learn's Iris",
    )


def load(arg: str | None = None) -> pd.DataFrame:
    return synth_frame(_rows(arg), seed=0)
