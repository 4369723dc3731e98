"""Iris at scale: rows drawn from per-class Gaussians fitted to the real Iris measurements.

The course moves to PyTorch for scale; 150 flowers cannot show it. These rows keep Iris's label
names, class means and covariances, so a model trained on them behaves like one trained on Iris,
and any number of them can be written to Parquet one row group at a time: memory stays bounded
by the row group, not by the number of rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from labline.data.iris import FEATURES, LABELS
from labline.data.iris import load as load_iris_frame

TARGET = "species"
DEFAULT_ROW_GROUP_ROWS = 1 << 18  # 262,144 rows: about 8 MiB of features per group


@dataclass(frozen=True)
class ClassGaussians:
    """Per-class mean vectors and covariance matrices, with the class names they belong to."""

    labels: list[str]
    means: np.ndarray  # (classes, features)
    covariances: np.ndarray  # (classes, features, features)

    @classmethod
    def fit(cls, frame: pd.DataFrame, features: list[str], target: str) -> ClassGaussians:
        labels = sorted(frame[target].astype(str).unique())
        groups = [frame.loc[frame[target].astype(str) == label, features].to_numpy(float) for label in labels]
        means = np.stack([g.mean(axis=0) for g in groups])
        covariances = np.stack([np.cov(g, rowvar=False) for g in groups])
        return cls(labels=labels, means=means, covariances=covariances)


def iris_gaussians() -> ClassGaussians:
    """The Gaussians fitted to the 150 real Iris flowers (in LABELS order)."""
    fitted = ClassGaussians.fit(load_iris_frame(), FEATURES, TARGET)
    assert fitted.labels == LABELS, fitted.labels
    return fitted


def _draw(gaussians: ClassGaussians, rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`rows` (features, class index) pairs; classes equally likely, every measurement positive.

    A few Gaussian draws fall at or below zero (setosa's petals are short and thin); those rows
    are drawn again, because a flower with a negative width is not a flower.
    """
    classes = rng.integers(0, len(gaussians.labels), size=rows)
    features = np.empty((rows, gaussians.means.shape[1]))
    factors = np.linalg.cholesky(gaussians.covariances)
    todo = np.arange(rows)
    while todo.size:
        noise = rng.standard_normal((todo.size, features.shape[1]))
        picked = classes[todo]
        for k, factor in enumerate(factors):
            mine = picked == k
            features[todo[mine]] = gaussians.means[k] + noise[mine] @ factor.T
        todo = todo[(features[todo] <= 0.0).any(axis=1)]
    return features, classes


def iter_synth_chunks(rows: int, seed: int = 0, chunk_rows: int = DEFAULT_ROW_GROUP_ROWS) -> Iterator[pd.DataFrame]:
    """Synthetic Iris rows as DataFrames of at most `chunk_rows` rows each.

    The same (rows, seed, chunk_rows) always give the same rows.
    """
    if rows < 1:
        raise ValueError(f"rows must be a positive number of rows, got {rows}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    gaussians = iris_gaussians()
    rng = np.random.default_rng(seed)
    names = np.asarray(gaussians.labels, dtype=object)
    for start in range(0, rows, chunk_rows):
        features, classes = _draw(gaussians, min(chunk_rows, rows - start), rng)
        chunk = pd.DataFrame(features, columns=FEATURES)
        chunk[TARGET] = names[classes]
        yield chunk


def synth_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """`rows` synthetic Iris rows in memory: the rows `write_synth_parquet` writes with the same seed."""
    return pd.concat(list(iter_synth_chunks(rows, seed)), ignore_index=True)


def write_synth_parquet(
    path: str | Path, rows: int, seed: int = 0, row_group_rows: int = DEFAULT_ROW_GROUP_ROWS
) -> Path:
    """Write `rows` synthetic Iris rows to a Parquet file, one row group per chunk.

    Only one chunk is in memory at a time, so 10 million rows need no more memory than 262,144.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if path.suffix.lower() not in (".parquet", ".pq"):
        raise ValueError(f"output {str(path)!r} must be a .parquet file")
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([*(pa.field(f, pa.float64()) for f in FEATURES), pa.field(TARGET, pa.string())])
    partial = path.with_name(path.name + ".partial")
    with pq.ParquetWriter(partial, schema, compression="snappy") as writer:
        for chunk in iter_synth_chunks(rows, seed, row_group_rows):
            writer.write_table(
                pa.Table.from_pandas(chunk, schema=schema, preserve_index=False), row_group_size=row_group_rows
            )
    partial.replace(path)  # a crash never leaves a truncated file under the final name
    return path
