"""Finding and loading data sets: built-in declarations by name, or any CSV/Parquet file.

A built-in data set is declared here (`Builtin`: its module and the files it reads) and
implemented by a module under `labline.data` with a `SPEC` (DatasetSpec) and a
`load(arg: str | None) -> DataFrame` function returning the raw rows, cleaned as declared.
`name:arg` passes `arg` to the loader (for example `iris_synth:100000`, `airbnb:PATH`).

A data set is checked before any file is touched and before any kernel starts, the same way
whether it comes from `--dataset`, `-p dataset=...`, pipeline.yaml or a notebook's default
(`data_files`, which the runner calls for every step's `dataset` while it plans): a name no file
system could hold (a part over MAX_NAME_BYTES) is refused; a file (`PATH`, `census:PATH`) is read
only inside the project (the folder of pipeline.yaml) or under a folder `LABLINE_DATA_DIRS` names,
never elsewhere on the machine (`/etc/passwd`, `../../x.csv`); a declared data set's own file (the
shipped CSV, scikit-learn's iris.csv) is always allowed. A data set a command is given is also
loaded (`check_dataset`): fewer than MIN_ROWS rows are refused, as the train/test split needs them.

`data_files` says which files loading a data set reads; the runner hashes them into the
fingerprint of every step whose `dataset` parameter names it (`parameter_files`, registered as the
`runner.inputs` entry point), so a new data file reruns the steps that read it.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas loads when data does, so the CLI starts fast
    import pandas as pd

from labline.data.spec import DatasetSpec, infer_spec
from labline.paths import data_dirs, project_file, project_root
from runner.params import shortened

CHECKOUT = Path(__file__).resolve().parents[2]  # the shipped data/ beside the package, in a checkout


@dataclass(frozen=True)
class Builtin:
    """A built-in data set: the module that loads it and every file its loader reads."""

    module: str
    shipped: str | None = None  # the project's file (relative to the project) it reads by default
    packaged: tuple[str, str] | None = None  # (package, file inside it): rows a library ships
    takes_file: bool = False  # `name:PATH` reads PATH instead of the shipped file


# One line per declared data set. Iris ships with scikit-learn: load_iris reads the package's
# datasets/data/iris.csv, and those bytes are the rows, so the file counts, not scikit-learn's
# version (requirements.lock pins the version; a version with the same file keeps the cache).
# iris_synth is fitted to the same rows.
_IRIS_CSV = ("sklearn", "datasets/data/iris.csv")
BUILTIN: dict[str, Builtin] = {
    "iris": Builtin("labline.data.iris", packaged=_IRIS_CSV),
    "iris_synth": Builtin("labline.data.iris_synth", packaged=_IRIS_CSV),
    "census": Builtin("labline.data.census", shipped="data/census_income.csv.gz", takes_file=True),
    "airbnb": Builtin("labline.data.airbnb", shipped="data/nyc_airbnb_2019_sample.csv.gz", takes_file=True),
}

# The fewest rows a data set may have: a train/test split (20 % held out), a validation share of
# the training rows and 5 cross-validation folds need this many; fewer fail in a kernel, in scikit-learn.
MIN_ROWS = 10
MAX_NAME_BYTES = 255  # the longest file name (one part of a path) Linux file systems take: NAME_MAX

READERS = {".csv": "read_csv", ".parquet": "read_parquet", ".pq": "read_parquet"}  # pandas functions


class DatasetError(ValueError):
    """A data set that cannot be found, read, or does not match what was asked."""


def builtin_names() -> list[str]:
    return sorted(BUILTIN)


def _module(name: str):
    return importlib.import_module(BUILTIN[name].module)


def check_name(source: str) -> None:
    """Refuse a data set name no file system could hold, before any file is touched."""
    longest = max(len(part.encode()) for part in source.replace(":", "/").split("/"))
    if longest > MAX_NAME_BYTES:
        raise DatasetError(
            f"data set name {shortened(source, 60)!r} is too long: a part of {longest} bytes, where a file name has "
            f"at most {MAX_NAME_BYTES}; expected a built-in ({', '.join(builtin_names())}) or a data file's path"
        )


def existing_allowed_file(path: Path, here: Path, missing: str) -> Path:
    """`path` (read from `here`) when it exists and lies inside the project (at or above `here`) or under
    a folder of LABLINE_DATA_DIRS; else a DatasetError that says which of the two is wrong, or both
    (`missing` says the first), whatever else happens to exist on this machine."""
    resolved, root = (here / path).resolve(), project_root(here)
    inside = any(resolved.is_relative_to(folder.resolve()) for folder in (root, *data_dirs()))
    exists = resolved.exists()
    if inside and exists:
        return path
    if inside:
        raise DatasetError(missing)
    outside = (
        f"data file {shortened(str(path))!r} lies outside the project ({root}) and outside the folders "
        "LABLINE_DATA_DIRS allows: copy it into the project, or add its folder to LABLINE_DATA_DIRS"
    )
    raise DatasetError(outside if exists else f"{missing}; {outside}")


def data_files(source: str, cwd: str | Path | None = None) -> list[Path]:
    """The files loading `source` reads, found as a notebook working in `cwd` (default: here) finds them.

    A DatasetError when they cannot be located or lie where data is not read from: a step is refused
    rather than run on unknown data.
    """
    check_name(source)
    here = Path(cwd) if cwd is not None else Path.cwd()
    name, _, arg = source.partition(":")
    if name not in BUILTIN or (here / source).exists():
        builtins = ", ".join(builtin_names())
        missing = f"unknown data set {shortened(source)!r}: not a built-in ({builtins}) and no such file"
        return [existing_allowed_file(project_file(source, here), here, missing)]
    declared = BUILTIN[name]
    if declared.packaged:
        return [_packaged_file(*declared.packaged)]
    if arg and declared.takes_file:
        missing = f"data file {shortened(arg)!r} of {name!r} does not exist"
        return [existing_allowed_file(project_file(arg, here), here, missing)]
    return [_shipped_file(declared.shipped, here)]


def declared_file(name: str, arg: str | None = None) -> Path:
    """The one file built-in data set `name` (or `name:arg`) reads: what its loader opens."""
    (path,) = data_files(f"{name}:{arg}" if arg else name)
    return path


def _shipped_file(relative: str, here: Path) -> Path:
    for path in (project_file(relative, here), CHECKOUT / relative):
        if path.exists():
            return path
    raise DatasetError(f"{relative} is missing: looked under {here} and {CHECKOUT}")


def _packaged_file(package: str, inner: str) -> Path:
    """A file shipped inside an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"{package} is not installed, and it ships {inner}")
    path = Path(next(iter(spec.submodule_search_locations))) / inner
    if not path.is_file():
        raise DatasetError(f"{path} does not exist: the {package} installed here does not ship {inner}")
    return path


def parameter_files(parameter: str, value: Any, cwd: Path) -> list[Path] | None:
    """The runner's input resolver (entry point `runner.inputs`): the files a `dataset` parameter reads."""
    if parameter != "dataset" or not isinstance(value, str) or not value.strip():
        return None
    return data_files(value.strip(), cwd)


def get_spec(source: str, target: str | None = None) -> DatasetSpec:
    """The spec of a built-in data set, or one inferred from a file."""
    return load_dataset(source, target=target)[1]


def dataset_task(source: str, target: str | None = None) -> str:
    """The task of a data set: a built-in's declared one (nothing loaded), a file's inferred one."""
    check_name(source)
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
    """Apply the declared cleaning: strip text, turn missing markers into NA, coerce numerics.

    It changes values and removes no row; a built-in's rules that remove rows are declared beside
    it (`RULES`, labline.data.cleaning) so that their counts are reported and their limits enforced.
    """
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


def check_dataset(source: str, target: str | None = None, cwd: str | Path | None = None) -> None:
    """What a command checks of a data set before any run folder or kernel exists: where its files are
    (`data_files`), that it loads, and that it has MIN_ROWS rows; a DatasetError says what is wrong."""
    data_files(source, cwd)
    frame, _ = load_dataset(source, target)
    if len(frame) < MIN_ROWS:
        raise DatasetError(
            f"data set {shortened(source)!r} has {len(frame)} row(s): the train/test split needs at least {MIN_ROWS}"
        )


def load_dataset(source: str, target: str | None = None) -> tuple[pd.DataFrame, DatasetSpec]:
    """Load a data set by built-in name (`iris`, `name:arg`) or by file path, its features typed as
    models see them (labline.data.frame), so a snapshot holds what serving will send.

    A file needs `target`; its spec is inferred from the data (print it with
    `labline data spec FILE --target COL`, edit it, and pass the JSON with `--spec`).
    """
    from labline.data.frame import with_model_dtypes

    check_name(source)  # before Path.exists, which raises OSError for a name no file system holds
    name, _, arg = source.partition(":")
    if name in BUILTIN and not Path(source).exists():
        module = _module(name)
        spec = module.SPEC(arg) if callable(module.SPEC) else module.SPEC
        return with_model_dtypes(spec, module.load(arg or None)), spec
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
    return with_model_dtypes(spec, clean(frame, spec)), spec
