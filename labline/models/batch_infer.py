"""Batch inference that streams: any number of rows in, predictions out, memory bounded by one batch.

Input is read in batches (Parquet record batches, or CSV chunks), each batch is predicted with the
loaded model (the very preprocessing and network that were trained), and written out before the
next is read. The output holds the input columns, `prediction`, and for classification one
`proba_<label>` column per class.

Example:
    >>> model = load_model("runs/notebook/train_torch/model")       # doctest: +SKIP
    >>> predict_file(model, "big.parquet", "predictions.parquet")   # doctest: +SKIP
    {'row_count': 10000000, 'seconds': 41.2, 'batches': 39, ...}
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from labline.models.artifact import LoadedModel
from labline.models.parquet_rows import read_ahead

DEFAULT_BATCH_ROWS = 1 << 16  # 65,536 rows: measured as fast as larger batches, with less memory
OUTPUT_SUFFIXES = (".parquet", ".csv")


def prediction_columns(model: LoadedModel, rows: pd.DataFrame) -> dict[str, pa.Array]:
    """`prediction` (and `proba_<label>` for classification) for a batch, as Arrow columns.

    Class probabilities are computed once and the label is their argmax, so a classifier's network
    runs once per row. They are written in the model's precision (float32 for a network, float64
    for scikit-learn), so a file holds the answer the library and the service give.
    """
    if model.spec.task != "classification":
        return {"prediction": pa.array(np.asarray(model.predict(rows), dtype=np.float64))}
    probabilities = np.asarray(model.predict_proba(rows))
    codes = probabilities.argmax(axis=1).astype(np.int32)
    columns = {"prediction": pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(model.labels, pa.string()))}
    for i, label in enumerate(model.labels):
        columns[f"proba_{label}"] = pa.array(probabilities[:, i].astype(model.precision))
    return columns


def iter_input(path: str | Path, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.Table]:
    """The input file as Arrow tables of at most `batch_rows` rows (Parquet or CSV)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input {str(path)!r} does not exist")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
            yield pa.Table.from_batches([batch])
    elif ".csv" in suffixes:
        for chunk in pd.read_csv(path, chunksize=batch_rows):
            yield pa.Table.from_pandas(chunk, preserve_index=False)
    else:
        raise ValueError(f"cannot read {str(path)!r}: expected a .parquet or .csv (optionally .csv.gz) file")


class _Writer:
    """Parquet or CSV output, opened on the first batch (its schema fixes the file's)."""

    def __init__(self, path: Path):
        if path.suffix.lower() not in OUTPUT_SUFFIXES:
            raise ValueError(f"output {str(path)!r} must end in one of {OUTPUT_SUFFIXES}")
        self.path, self.parquet, self.csv = path, None, None

    def write(self, table: pa.Table) -> None:
        if self.path.suffix.lower() == ".parquet":
            if self.parquet is None:
                # Dictionary encoding only where it pays (text, labels): tried on random floats it
                # costs most of the write time and saves nothing.
                text = [
                    f.name
                    for f in table.schema
                    if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_dictionary(f.type)
                ]
                self.parquet = pq.ParquetWriter(self.path, table.schema, compression="snappy", use_dictionary=text)
            self.parquet.write_table(table)
        else:
            import pyarrow.csv as pacsv

            if self.csv is None:
                self.csv = pacsv.CSVWriter(self.path, table.schema)
            self.csv.write_table(table)

    def close(self) -> None:
        for writer in (self.parquet, self.csv):
            if writer is not None:
                writer.close()


def predict_file(
    model: LoadedModel, input_path: str | Path, output_path: str | Path, batch_rows: int = DEFAULT_BATCH_ROWS
) -> dict:
    """Predict every row of `input_path` into `output_path` (.parquet or .csv), one batch at a time.

    Returns {"row_count", "batches", "seconds", "rows_per_second", "output_path"}.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be positive, got {batch_rows}")
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    partial = output_path.with_name(output_path.name + ".partial" + output_path.suffix)
    writer = _Writer(partial)
    rows = batches = 0
    started = time.perf_counter()
    # Reading the next batch and writing the previous one run in threads (Arrow releases the GIL)
    # while this one is predicted: at most three batches are in memory.
    pending: Future | None = None
    try:
        with ThreadPoolExecutor(max_workers=1) as writes:
            for table in read_ahead(iter_input(input_path, batch_rows)):
                frame = table.select([c for c in model.spec.features if c in table.column_names]).to_pandas()
                for name, column in prediction_columns(model, frame).items():
                    if name in table.column_names:
                        table = table.drop_columns([name])
                    table = table.append_column(name, column)
                if pending is not None:
                    pending.result()
                pending = writes.submit(writer.write, table)
                rows += table.num_rows
                batches += 1
            if pending is not None:
                pending.result()
    finally:
        writer.close()
    if rows == 0:
        partial.unlink(missing_ok=True)
        raise ValueError(f"input {str(input_path)!r} has no rows")
    partial.replace(output_path)  # a failed run never leaves half a file under the final name
    seconds = time.perf_counter() - started
    return {
        "row_count": rows,
        "batches": batches,
        "seconds": round(seconds, 4),
        "rows_per_second": round(rows / seconds, 1),
        "output_path": str(output_path.resolve()),
    }
