"""The pipeline benchmark's pieces that decide what is compared: the replayed parameters, papermill's
kernel-to-first-cell time, ploomber-engine in its own environment, and the choice of parts."""

from __future__ import annotations

import importlib.util
import sys
import time

import pytest

from runner.scraps import read_scraps
from tests.fixtures import ROOT

ECHO = ROOT / "tests" / "fixtures" / "echo.ipynb"


def _load(name: str):
    """A benchmark script as a module (benchmarks/ is not a package); dataclasses need it in sys.modules."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load("pipeline_overhead")
ploomber_runner = bench.ploomber_runner


def test_replay_moves_every_path_into_a_step_folder_to_the_replays_own(tmp_path):
    manifest = {
        "steps": {
            "explore": {
                "notebook": "/p/notebooks/explore.ipynb",
                "parameters": {"output_dir": "/runs/r1/explore/artifacts", "dataset": "iris"},
            },
            "train": {
                "notebook": "/p/notebooks/train.ipynb",
                "parameters": {
                    "output_dir": "/runs/r1/train/artifacts",
                    "data_path": "/runs/r1/explore/artifacts/snapshot.parquet",
                    "near_miss": "/runs/r1/explore/artifacts_old/x",
                    "lr": 0.1,
                },
            },
        }
    }
    explore, train = bench.replay_plan(manifest, tmp_path)
    assert explore.parameters == {"output_dir": str(tmp_path / "explore" / "artifacts"), "dataset": "iris"}
    assert train.parameters == {
        "output_dir": str(tmp_path / "train" / "artifacts"),
        "data_path": str(tmp_path / "explore" / "artifacts" / "snapshot.parquet"),
        "near_miss": "/runs/r1/explore/artifacts_old/x",
        "lr": 0.1,
    }
    assert (train.notebook, train.output) == ("/p/notebooks/train.ipynb", str(tmp_path / "train" / "train.ipynb"))


def test_papermill_command_runs_the_notebook_and_its_metadata_gives_kernel_to_first_cell(tmp_path):
    output = tmp_path / "echo" / "echo.ipynb"
    started = time.time()
    seconds, first_cell = bench.papermill(str(ECHO), str(output), {"x": 4, "output_dir": str(tmp_path / "out")})
    assert (tmp_path / "out" / "doubled.txt").read_text() == "8"
    assert 0 < first_cell < seconds
    assert bench.kernel_to_first_cell(output) == first_cell
    assert first_cell < bench.step_to_first_cell({"output_notebook": str(output), "started": started}) < seconds
    assert bench.kernel_to_first_cell(ECHO) is None  # never executed: no papermill metadata


@pytest.mark.skipif(
    not (ploomber_runner.VENV / ".installed").exists(),
    reason="ploomber-engine's environment is created by the first benchmark run (benchmarks/.venvs/)",
)
def test_ploomber_engine_runs_in_its_own_environment_and_keeps_the_scraps(tmp_path):
    python = ploomber_runner.ensure_environment(ROOT / "requirements.lock")
    config = (ploomber_runner.VENV / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in config
    plan = {
        "cwd": str(ROOT),
        "steps": [
            {
                "name": "echo",
                "notebook": str(ECHO),
                "output": str(tmp_path / "echo" / "echo.ipynb"),
                "parameters": {"x": 3, "output_dir": str(tmp_path / "out")},
            }
        ],
    }
    result = ploomber_runner.run_plan(python, plan, tmp_path, pythonpath=ROOT)
    assert (tmp_path / "out" / "doubled.txt").read_text() == "6"
    assert result["prefix"] == str(ploomber_runner.VENV)
    assert result["steps"]["echo"]["glue_warnings"] == 6  # echo.ipynb glues six values, each warns: no kernel
    assert result["seconds_with_process"] >= result["seconds"] >= result["steps"]["echo"]["seconds"] > 0
    # ...yet the scraps reach the output notebook as display outputs, and read back as labline reads them
    assert read_scraps(tmp_path / "echo" / "echo.ipynb") == {
        "doubled": 6,
        "text": "hi",
        "sizes": [16],
        "mode": "a",
        "rate": 0.5,
        "result_path": str(tmp_path / "out" / "doubled.txt"),
    }


def test_only_names_the_parts_and_rejects_others(capsys):
    assert bench.parse_args(["--only", "floor, ploomber"]).parts == ["floor", "ploomber"]
    with pytest.raises(SystemExit):
        bench.parse_args(["--only", "floor,bogus"])
    error = capsys.readouterr().err
    assert "'bogus'" in error and "sweep_papermill" in error
    with pytest.raises(SystemExit):
        bench.parse_args(["--rounds", "0"])
    assert len(bench.combinations(bench.SWEEP_GRID)) == 16
