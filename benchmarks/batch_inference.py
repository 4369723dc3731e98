"""Batch inference: rows per second through streaming `infer`, against the in-memory floor.

    .venv/bin/python benchmarks/batch_inference.py --rows 10000000

In one process: write --rows synthetic Iris rows to Parquet, train a model on a small sample,
then (1) labline.models.batch_infer.predict_file (what the infer notebook runs: read a batch,
preprocess, predict, write Parquet) and (2) the floor: the same loaded model's predict_proba and
labels on the rows already in memory as one frame (no reading, no writing). Reports rows per
second, the ratio, and the process's peak RSS after the streaming run (before the floor loads
everything). Writes benchmarks/results/batch_inference.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from labline.data.synth import write_synth_parquet
from labline.models.artifact import load_model
from labline.models.batch_infer import DEFAULT_BATCH_ROWS, predict_file
from labline.models.torch_net import select_device
from labline.models.torch_train import peak_memory_mb
from labline.models.train_parquet import train_parquet

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the input and output files go (default: a temp folder)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "batch_inference.json")
    args = parser.parse_args()

    select_device("cpu")  # the thread rule training uses; the model runs on CPU here
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        folder = Path(folder)
        train = write_synth_parquet(folder / "train.parquet", rows=50_000, seed=1)
        model_dir = train_parquet(train, folder / "model", target="species", epochs=1, batch_size=1024, device="cpu")[
            "model_dir"
        ]
        model = load_model(model_dir)
        started = time.perf_counter()
        source = write_synth_parquet(folder / "rows.parquet", rows=args.rows, seed=2)
        write_seconds = time.perf_counter() - started
        baseline_rss = peak_memory_mb()

        streamed = predict_file(model, source, folder / "predictions.parquet", batch_rows=args.batch_rows)
        streaming_peak = peak_memory_mb()
        print(
            f"streaming: {streamed['row_count']:,} rows in {streamed['seconds']:.1f} s = "
            f"{streamed['rows_per_second']:,.0f} rows/s; peak RSS {streaming_peak:.0f} MiB (before: {baseline_rss:.0f})"
        )
        output_bytes = (folder / "predictions.parquet").stat().st_size
        first = pq.ParquetFile(folder / "predictions.parquet").read_row_group(0).to_pandas()

        frame = pd.read_parquet(source)  # the floor gets its rows for free
        started = time.perf_counter()
        probabilities = model.predict_proba(frame)
        labels = np.asarray(model.labels, dtype=object)[probabilities.argmax(axis=1)]
        floor_seconds = time.perf_counter() - started
        floor_rate = len(frame) / floor_seconds
        agree = bool((labels[: len(first)] == first["prediction"].astype(str).to_numpy()).all())
        input_bytes = source.stat().st_size
        in_memory_bytes = int(frame.memory_usage(deep=True).sum())
        print(
            f"floor (in-memory predict_proba): {floor_rate:,.0f} rows/s; streaming / floor = "
            f"{streamed['rows_per_second'] / floor_rate:.1%}; first batch agrees: {agree}"
        )

    result = {
        "benchmark": "batch_inference",
        "rows": args.rows,
        "batch_rows": args.batch_rows,
        "cores": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "input_write_seconds": write_seconds,
        "input_parquet_bytes": input_bytes,
        "input_in_memory_bytes": in_memory_bytes,
        "output_parquet_bytes": output_bytes,
        "streaming": {
            "seconds": streamed["seconds"],
            "rows_per_second": streamed["rows_per_second"],
            "batches": streamed["batches"],
            "peak_rss_mb": streaming_peak,
            "rss_before_mb": baseline_rss,
        },
        "floor": {"seconds": floor_seconds, "rows_per_second": floor_rate, "peak_rss_mb": peak_memory_mb()},
        "streaming_vs_floor": streamed["rows_per_second"] / floor_rate,
        "first_batch_agrees_with_floor": agree,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
