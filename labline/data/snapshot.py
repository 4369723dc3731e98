"""Data snapshots: the Parquet file later steps read, its fingerprint, and the shared split.

The split is decided once, in the snapshot (a `split` column), so every trainer and the audit
see the very same held-out rows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from labline.data.spec import DatasetSpec

SPLIT = "split"


def fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's content (column names, dtypes and values; row order matters)."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update("\x1f".join(str(t) for t in frame.dtypes).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def assign_split(frame: pd.DataFrame, spec: DatasetSpec, test_size: float, seed: int) -> pd.DataFrame:
    """Add a `split` column (train/test), stratified on the label for classification."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be between 0 and 1, got {test_size}")
    stratify = frame[spec.target] if spec.task == "classification" else None
    if stratify is not None and stratify.value_counts().min() < 2:
        stratify = None
    _, test_idx = train_test_split(np.arange(len(frame)), test_size=test_size, random_state=seed, stratify=stratify)
    out = frame.copy()
    out[SPLIT] = "train"
    out.iloc[test_idx, out.columns.get_loc(SPLIT)] = "test"
    return out


def write_snapshot(frame: pd.DataFrame, path: str | Path) -> str:
    """Write the snapshot as Parquet and return its content fingerprint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.reset_index(drop=True).to_parquet(path, index=False)
    return fingerprint(frame.reset_index(drop=True))


def read_snapshot(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data snapshot {str(path)!r} does not exist; run the explore step first")
    return pd.read_parquet(path)


def split_frames(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train rows, test rows) of a snapshot, without the split column."""
    if SPLIT not in frame.columns:
        raise ValueError(f"snapshot has no {SPLIT!r} column; it was not written by the explore step")
    train = frame[frame[SPLIT] == "train"].drop(columns=SPLIT)
    test = frame[frame[SPLIT] == "test"].drop(columns=SPLIT)
    return train, test


def prepare_snapshot(dataset: str, target: str = "", test_size: float = 0.2, seed: int = 42):
    """Load a data set and add the split: what explore writes, computed in memory.

    Trainers call this when they run on their own (in JupyterLab with defaults); with the same
    dataset, test_size and seed they get exactly the rows explore would have written.
    """
    from labline.data.datasets import load_dataset

    frame, spec = load_dataset(dataset, target or None)
    return assign_split(frame.reset_index(drop=True), spec, test_size, seed), spec


def open_snapshot(data_path: str, spec_path: str, dataset: str, target: str, test_size: float, seed: int):
    """(frame with split, spec, fingerprint): from explore's files when given, else prepared here."""
    from labline.data.spec import DatasetSpec

    if data_path:
        frame = read_snapshot(data_path)
        spec = DatasetSpec.from_file(spec_path) if spec_path else prepare_snapshot(dataset, target, test_size, seed)[1]
    else:
        frame, spec = prepare_snapshot(dataset, target, test_size, seed)
    return frame, spec, fingerprint(frame)
