"""The same scheduler on Dask distributed: a real LocalCluster of two worker processes."""

from __future__ import annotations

import pytest

from tests.fixtures import kernel_processes, make_project


@pytest.fixture(scope="module")
def dask_executor():
    from runner.executors import make_executor

    executor = make_executor("dask", workers=2)
    yield executor
    executor.close()


def test_pipeline_and_sweep_on_a_dask_local_cluster(dask_executor, tmp_path):
    from runner.pipeline import run_pipeline
    from runner.spec import load_pipeline
    from runner.sweep import sweep, sweep_rows

    assert dask_executor.remote and dask_executor.workers == 2
    pipeline = make_project(
        tmp_path / "project",
        {
            "make": {"notebook": "echo.ipynb", "parameters": {"x": 3}},
            "use": {
                "notebook": "consume.ipynb",
                "needs": ["make"],
                "parameters": {"value": "${make.doubled}", "result_path": "${make.result_path}"},
            },
        },
    )
    spec = load_pipeline(pipeline)
    record = run_pipeline(spec, tmp_path / "runs", executor=dask_executor)
    assert record.manifest["status"] == "succeeded", record.manifest
    assert record.manifest["steps"]["use"]["scraps"] == {"total": 12}

    records = sweep(spec, tmp_path / "runs", "use", {"value": [1, 5]}, executor=dask_executor)
    rows = sweep_rows(records, "use", {"value": [1, 5]})
    assert sorted(r["total"] for r in rows) == [7, 11]  # value + 6 read from make's cached artifact
    assert all(r.manifest["steps"]["make"]["status"] == "cached" for r in records)
    assert kernel_processes(cwd=pipeline.parent) == []


def test_unknown_executor_is_a_usage_error():
    from runner.executors import make_executor

    with pytest.raises(Exception, match="unknown executor 'spark'") as info:
        make_executor("spark")
    assert info.value.exit_code == 2
