"""DistributedDataParallel: 2 gloo processes under torchrun train what one process trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from labline.data.synth import write_synth_parquet

TORCHRUN = Path(sys.executable).with_name("torchrun")


def _train(data: Path, out: Path, processes: int) -> dict:
    args = [
        "-m",
        "labline.models.train_parquet",
        "--data",
        str(data),
        "--target",
        "species",
        "--out",
        str(out),
        "--epochs",
        "2",
        "--batch-size",
        "256",
        "--device",
        "cpu",
        "--seed",
        "3",
    ]
    if processes == 1:
        command = [sys.executable, *args]
    else:
        command = [str(TORCHRUN), "--standalone", f"--nproc_per_node={processes}", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((out / "metrics.json").read_text())


def test_two_gloo_processes_match_one_process(tmp_path):
    data = write_synth_parquet(tmp_path / "iris.parquet", rows=8_000, seed=11, row_group_rows=2_000)
    one = _train(data, tmp_path / "one", 1)
    two = _train(data, tmp_path / "two", 2)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert one["test_rows"] == two["test_rows"]
    # Each process takes half of every global batch and gradients are averaged: the same steps,
    # so the same model up to floating-point summation order.
    assert one["steps"] == two["steps"]
    assert abs(one["test_accuracy"] - two["test_accuracy"]) <= 2 / one["test_rows"]
    assert one["test_accuracy"] >= 0.95
    weights_one = torch.load(tmp_path / "one" / "model" / "state_dict.pt", weights_only=True)
    weights_two = torch.load(tmp_path / "two" / "model" / "state_dict.pt", weights_only=True)
    for name, value in weights_one.items():
        torch.testing.assert_close(weights_two[name], value, atol=1e-3, rtol=1e-3)
    assert one["loss_curve"]["val_loss"] == pytest.approx(two["loss_curve"]["val_loss"], rel=1e-3)
