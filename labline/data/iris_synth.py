"""`iris_synth:N`: N synthetic Iris rows (see labline.data.synth), for the pipeline at scale.

Through explore the N rows are held in memory and profiled, which suits up to a few million
rows; beyond that, write a file with `labline data synth` and train from it with
`python -m labline.models.torch_train`, which streams row groups.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from labline.data import iris
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
    """Iris's own declaration (same columns, labels and bounds), named and described for N rows."""
    return replace(
        iris.SPEC,
        name="iris_synth",
        description=f"{_rows(arg)} synthetic Iris rows from per-class Gaussians fitted to the real measurements.",
        source="labline.data.synth (seed 0), fitted to scikit-learn's Iris",
    )


def load(arg: str | None = None) -> pd.DataFrame:
    return synth_frame(_rows(arg), seed=0)
