"""Synthetic Iris: it matches the real measurements, and writing it keeps memory bounded."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from labline.data.datasets import load_dataset
from labline.data.iris import FEATURES, LABELS
from labline.data.iris import load as load_iris_frame
from labline.data.synth import iter_synth_chunks, synth_frame, write_synth_parquet
from tests.fixtures.cli import run_cli


def test_per_class_means_and_covariances_match_iris():
    real = load_iris_frame()
    synth = synth_frame(60_000, seed=3)
    assert sorted(synth["species"].unique()) == LABELS
    assert (synth[FEATURES] > 0).all().all()
    for label in LABELS:
        want = real.loc[real["species"] == label, FEATURES].to_numpy()
        got = synth.loc[synth["species"] == label, FEATURES].to_numpy()
        assert abs(len(got) / len(synth) - 1 / 3) < 0.01, label
        # 20,000 rows per class: the standard error of a mean is about 0.003 cm.
        np.testing.assert_allclose(got.mean(axis=0), want.mean(axis=0), atol=0.02, err_msg=label)
        np.testing.assert_allclose(np.cov(got, rowvar=False), np.cov(want, rowvar=False), atol=0.01, err_msg=label)


def test_file_holds_the_in_memory_rows_in_row_groups(tmp_path):
    path = write_synth_parquet(tmp_path / "s.parquet", rows=5_000, seed=7, row_group_rows=1_000)
    meta = pq.ParquetFile(path).metadata
    assert (meta.num_rows, meta.num_row_groups) == (5_000, 5)
    written = pd.read_parquet(path)
    in_memory = pd.concat(list(iter_synth_chunks(5_000, 7, 1_000)), ignore_index=True)
    pd.testing.assert_frame_equal(written, in_memory, check_dtype=False)
    other_seed = pd.read_parquet(write_synth_parquet(tmp_path / "t.parquet", rows=5_000, seed=8, row_group_rows=1_000))
    assert not np.allclose(written[FEATURES].to_numpy(), other_seed[FEATURES].to_numpy())


WRITER_MEMORY = """
import json, sys, tracemalloc
import pyarrow as pa
from labline.data.synth import write_synth_parquet
import sklearn.datasets  # imported lazily by the Iris loader: a fixed cost, not the writer's memory
tracemalloc.start()
write_synth_parquet(sys.argv[1], rows=int(sys.argv[2]), seed=0, row_group_rows=int(sys.argv[3]))
peaks = {"python_peak": tracemalloc.get_traced_memory()[1], "arrow_peak": pa.default_memory_pool().max_memory()}
print(json.dumps(peaks))
"""


def _writer_peaks(path, rows: int, group: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", WRITER_MEMORY, str(path), str(rows), str(group)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert pq.ParquetFile(path).metadata.num_rows == rows
    return json.loads(done.stdout)


def test_writer_memory_is_bounded_by_the_row_group_not_the_rows(tmp_path):
    group = 20_000
    small = _writer_peaks(tmp_path / "small.parquet", 100_000, group)
    large = _writer_peaks(tmp_path / "large.parquet", 800_000, group)
    large_in_pandas = 8 * synth_frame(100_000).memory_usage(deep=True).sum()  # the 800,000 rows as a frame
    for kind in ("python_peak", "arrow_peak"):  # NumPy/pandas allocations, and Arrow's own pool
        # Eight times the rows, the same peak: one row group's worth plus fixed costs.
        assert large[kind] < 1.2 * small[kind] + 500_000, (kind, small, large)
        assert large[kind] < large_in_pandas / 6, (kind, large, large_in_pandas)


def test_synth_command_writes_and_refuses_bad_input(tmp_path):
    out = tmp_path / "cli.parquet"
    done = run_cli("data", "synth", "iris", "--rows", "3_000", "--out", str(out), "--row-group-rows", "1000")
    assert done.returncode == 0, done.stderr
    assert pq.ParquetFile(out).metadata.num_row_groups == 3
    bad_suffix = run_cli("data", "synth", "iris", "--rows", "10", "--out", str(tmp_path / "x.csv"))
    assert bad_suffix.returncode == 2 and ".parquet" in bad_suffix.stderr
    unknown = run_cli("data", "synth", "penguins", "--rows", "10", "--out", str(out))
    assert unknown.returncode == 2 and "penguins" in unknown.stderr and "iris" in unknown.stderr
    zero = run_cli("data", "synth", "iris", "--rows", "0", "--out", str(out))
    assert zero.returncode == 2 and "positive" in zero.stderr


def test_iris_synth_builtin_loads_n_rows():
    frame, spec = load_dataset("iris_synth:500")
    assert len(frame) == 500 and spec.name == "iris_synth" and spec.labels == LABELS
    assert list(frame.columns) == spec.columns
    with pytest.raises(ValueError, match="whole number"):
        load_dataset("iris_synth:many")
