"""Finding and loading data sets: built-in declarations by name, or any CSV/Parquet file.

A built-in data set is a module under `labline.data` with a `SPEC` (DatasetSpec) and a
`load(arg: str | None) -> DataFrame` function returning the raw rows, cleaned as declared.
`name:arg` passes `arg` to the loader (for example `iris_synth:100000`).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas loads when data does, so the CLI starts fast
    import pandas as pd

from labline.data.spec import DatasetSpec, infer_spec

# name -> module path. One line per declared data set.
BUILTIN: dict[str, str] = {
    "iris": "labline.data.iris",
    "iris_synth": "labline.data.iris_synth",
    "census": "labline.data.census",
    "airbnb": "labline.data.airbnb",
}

READERS = {".csv": "read_csv", ".parquet": "read_parquet", ".pq": "read_parquet"}  # pandas functions


class DatasetError(ValueError):
    """A data set that cannot be found, read, or does not match what was asked."""


def builtin_names() -> list[str]:
    return sorted(BUILTIN)


def _module(name: str):
    return importlib.import_module(BUILTIN[name])


def get_spec(source: str, target: str | None = None) -> DatasetSpec:
    """The spec of a built-in data set, or one inferred from a file."""
    return load_dataset(source, target=target)[1]


def dataset_task(source: str, target: str | None = None) -> str:
    """The task of a data set: a built-in's declared one (nothing loaded), a file's inferred one."""
    name, _, arg = source.partition(":")
    if name in BUILTIN and not Path(source).exists():
        module = _module(name)
        return (module.SPEC(arg) if callable(module.SPEC) else module.SPEC).task
    return get_spec(source, target).task


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (optionally gzipped) or Parquet file, with a clear error for anything else."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"data file {str(path)!r} does not exist")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zip", ".xz"):
        suffixes = suffixes[:-1]
    reader = READERS.get(suffixes[-1] if suffixes else "")
    if reader is None:
        raise DatasetError(f"cannot read {str(path)!r}: expected a .csv, .csv.gz or .parquet file")
    import pandas as pd

    try:
        frame = getattr(pd, reader)(path)
    except Exception as exc:  # the reader's own message says what is wrong with the bytes
        raise DatasetError(f"cannot read {str(path)!r}: {type(exc).__name__}: {exc}") from exc
    if frame.empty:
        raise DatasetError(f"data file {str(path)!r} has no rows")
    return frame


def clean(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Apply the declared cleaning: strip text, turn missing markers into NA, coerce numerics."""
    import pandas as pd

    frame = frame.copy()
    for col in frame.columns:
        if frame[col].dtype == object or pd.api.types.is_string_dtype(frame[col]):
            frame[col] = frame[col].astype("string").str.strip().astype(object)
            frame.loc[frame[col].isna(), col] = None
    if spec.missing_markers:
        frame = frame.replace({m: None for m in spec.missing_markers})
    for col in spec.numeric:
        if col in frame.columns:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    return frame


def load_dataset(source: str, target: str | None = None) -> tuple[pd.DataFrame, DatasetSpec]:
    """Load a data set by built-in name (`iris`, `name:arg`) or by file path.

    A file needs `target`; its spec is inferred from the data (print it with
    `labline data spec FILE --target COL`, edit it, and pass the JSON with `--spec`).
    """
    name, _, arg = source.partition(":")
    if name in BUILTIN and not Path(source).exists():
        module = _module(name)
        spec = module.SPEC(arg) if callable(module.SPEC) else module.SPEC
        return module.load(arg or None), spec
    path = Path(source)
    if not path.exists():
        raise DatasetError(
            f"unknown data set {source!r}: not a built-in ({', '.join(builtin_names())}) and no such file"
        )
    if not target:
        raise DatasetError(f"data file {source!r} needs --target COLUMN to name the label column")
    frame = read_table(path)
    if target not in frame.columns:
        raise DatasetError(f"target column {target!r} is not in {source!r}; its columns are {list(frame.columns)}")
    spec = infer_spec(frame, target, name=path.name.split(".")[0])
    return clean(frame, spec), spec
