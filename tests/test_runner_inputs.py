"""Every file a step reads is in its fingerprint: data set files, declared `inputs:` folders, files a
parameter names; folders hashed whole or refused; file hashes kept by stat, and trusted only so far."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from runner import filecache, inputs
from runner.errors import InputError, SpecError
from tests.fixtures import ROOT, make_project
from tests.fixtures.cli import run_cli

AIRBNB = "data/nyc_airbnb_2019_sample.csv.gz"


def rows(project: Path, **kwargs) -> dict[str, dict]:
    from runner.pipeline import plan_status
    from runner.spec import load_pipeline

    found = plan_status(load_pipeline(project / "pipeline.yaml"), project / "runs", **kwargs)
    return {row["step"]: row for row in found}


def run(project: Path, **kwargs):
    from runner.pipeline import run_pipeline
    from runner.spec import load_pipeline

    return run_pipeline(load_pipeline(project / "pipeline.yaml"), project / "runs", workers=2, **kwargs)


def statuses(record) -> dict[str, str]:
    return {name: body["status"] for name, body in record.manifest["steps"].items()}


def rewrite_keeping_mtime(path: Path, change) -> None:
    """Change a file's bytes, then set its access and modification times back to what they were."""
    before = path.stat()
    change(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns


def test_a_built_in_data_sets_file_edited_reruns_explore_and_downstream(tmp_path):
    """A copy of the project: `dataset: airbnb` reads the copy's data file; a new sample reruns explore."""
    project = tmp_path / "project"
    make_project(
        project,
        {
            "explore": {"notebook": "notebooks/explore.ipynb", "parameters": {"dataset": "airbnb", "sample_rows": 300}},
            "after": {"notebook": "echo.ipynb", "needs": ["explore"], "parameters": {"text": "${explore.spec_path}"}},
        },
    )
    (project / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks/explore.ipynb", project / "notebooks")
    (project / "data").mkdir()
    shutil.copy(ROOT / AIRBNB, project / AIRBNB)
    first = run(project)
    assert statuses(first) == {"explore": "succeeded", "after": "succeeded"}, first.manifest
    assert AIRBNB in first.manifest["steps"]["explore"]["fingerprint"]["inputs"]
    assert {r["action"] for r in rows(project).values()} == {"cached"}

    def new_sample(path: Path) -> None:  # the same listings, one nightly price changed
        listings = pd.read_csv(path)
        listings.loc[0, "price"] += 1
        path.write_bytes(gzip.compress(listings.to_csv(index=False).encode(), mtime=0))

    rewrite_keeping_mtime(project / AIRBNB, new_sample)
    status = rows(project)
    assert status["explore"]["action"] == "run"
    assert status["explore"]["reasons"] == [f"input {AIRBNB} changed"]
    assert status["after"]["reasons"] == ["upstream step explore will run"]
    where = ["--pipeline", str(project / "pipeline.yaml"), "--runs", str(project / "runs")]
    shown = run_cli("status", "--format=json", *where)  # what `labline status` prints
    assert shown.returncode == 0, shown.stderr
    assert {row["step"]: row["why"] for row in json.loads(shown.stdout)} == {
        "explore": f"input {AIRBNB} changed",
        "after": "upstream step explore will run",
    }
    second = run(project)
    assert statuses(second) == {"explore": "succeeded", "after": "succeeded"}  # executed again, not cached
    assert (
        second.manifest["steps"]["explore"]["fingerprint"]["inputs"][AIRBNB]
        != (first.manifest["steps"]["explore"]["fingerprint"]["inputs"][AIRBNB])
    )


@pytest.fixture
def folder_project(tmp_path) -> Path:
    """Two fixture steps; `make` declares a folder of weekly files as an input."""
    project = tmp_path / "project"
    weekly = project / "data" / "weekly"
    (weekly / "2019").mkdir(parents=True)
    for week in range(3):
        (weekly / "2019" / f"week{week}.csv").write_text(f"id,price\n{week},100\n")
    (weekly / "notes.txt").write_text("three weeks\n")
    steps = {
        "make": {"notebook": "echo.ipynb", "inputs": ["data/weekly"], "parameters": {"x": 2}},
        "use": {"notebook": "consume.ipynb", "needs": ["make"], "parameters": {"value": "${make.doubled}"}},
    }
    make_project(project, steps)
    return project


def test_a_declared_inputs_folder_edited_reruns_the_step_and_downstream(folder_project):
    first = run(folder_project)
    assert statuses(first) == {"make": "succeeded", "use": "succeeded"}
    assert set(first.manifest["steps"]["make"]["fingerprint"]["inputs"]) == {"data/weekly"}
    assert {r["action"] for r in rows(folder_project).values()} == {"cached"}

    week = folder_project / "data/weekly/2019/week1.csv"
    rewrite_keeping_mtime(week, lambda p: p.write_text("id,price\n1,999\n"))  # same size, same mtime
    status = rows(folder_project)
    assert status["make"]["reasons"] == ["input data/weekly changed"]
    assert status["use"]["reasons"] == ["upstream step make will run"]
    second = run(folder_project)
    assert statuses(second) == {"make": "succeeded", "use": "succeeded"}

    (folder_project / "data/weekly/2019/week3.csv").write_text("id,price\n3,100\n")  # a new file counts too
    assert rows(folder_project)["make"]["reasons"] == ["input data/weekly changed"]


def test_a_folder_over_the_limit_is_refused_before_any_run_folder(folder_project, monkeypatch):
    monkeypatch.setattr(inputs, "MAX_FOLDER_FILES", 4)  # the folder holds exactly 4 files: accepted
    assert rows(folder_project)["make"]["reasons"] == ["never ran"]
    (folder_project / "data/weekly/2019/week3.csv").write_text("id,price\n3,100\n")
    with pytest.raises(InputError) as refused:
        run(folder_project)
    message = str(refused.value)
    assert "step 'make'" in message and "input data/weekly" in message and "more than 4 files" in message
    assert "refuses to count only some of them" in message
    assert refused.value.exit_code == 2
    assert not (folder_project / "runs").exists()


def test_what_cannot_be_hashed_is_refused_with_the_reason(folder_project):
    os.mkfifo(folder_project / "data/weekly/pipe")
    with pytest.raises(InputError, match=r"input data/weekly: pipe is not a regular file"):
        rows(folder_project)
    os.remove(folder_project / "data/weekly/pipe")
    os.symlink(folder_project / "data/weekly", folder_project / "data/weekly/2019/again")
    with pytest.raises(InputError, match=r"2019/again links back to a folder above it"):
        rows(folder_project)


def test_a_missing_declared_input_is_a_spec_error(tmp_path):
    from runner.spec import load_pipeline

    path = make_project(tmp_path, {"make": {"notebook": "echo.ipynb", "inputs": ["data/nowhere.csv"]}})
    with pytest.raises(SpecError, match=r"step 'make': input 'data/nowhere.csv' does not exist") as error:
        load_pipeline(path)
    assert "relative to the pipeline file" in str(error.value)
    path = make_project(tmp_path, {"make": {"notebook": "echo.ipynb", "inputs": "${other.path}"}})
    with pytest.raises(SpecError, match="inputs are fixed paths"):
        load_pipeline(path)


def _explore_fingerprint(tmp_path: Path, dataset: str) -> dict:
    """The fingerprint `run` would give the real explore step reading `dataset` (nothing executed)."""
    from runner.cache import Fingerprints
    from runner.plan import declared_parameters
    from runner.spec import load_pipeline

    explore = {"notebook": str(ROOT / "notebooks/explore.ipynb"), "parameters": {"dataset": dataset}}
    path = make_project(tmp_path, {"explore": explore}, allow_outside=True)
    spec = load_pipeline(path)
    fingerprints = Fingerprints(spec, tmp_path / "runs", declared_parameters(spec))
    return fingerprints.step("explore", {"dataset": dataset}, {"dataset": dataset}, {})


@pytest.mark.parametrize("name", ["airbnb", "census"])
def test_name_path_data_files_count(tmp_path, name):
    from runner.cache import explain

    batch = tmp_path / "batches" / "accumulated.csv"
    batch.parent.mkdir()
    batch.write_text("id,price\n1,100\n")
    before = _explore_fingerprint(tmp_path, f"{name}:batches/accumulated.csv")
    assert set(before["inputs"]) == {"batches/accumulated.csv"}
    rewrite_keeping_mtime(batch, lambda p: p.write_text("id,price\n1,101\n"))
    after = _explore_fingerprint(tmp_path, f"{name}:batches/accumulated.csv")
    assert explain(after, before) == ["input batches/accumulated.csv changed"]


def test_iris_counts_the_file_scikit_learn_reads(tmp_path):
    import numpy as np
    from sklearn.datasets import load_iris

    from labline.data.datasets import data_files

    (path,) = data_files("iris")
    assert path.name == "iris.csv" and "sklearn" in path.parts
    lines = path.read_text().splitlines()[1:]
    values = np.array([[float(v) for v in line.split(",")] for line in lines])
    loaded = load_iris()
    assert np.array_equal(values[:, :4], loaded.data) and np.array_equal(values[:, 4], loaded.target)
    assert data_files("iris_synth:100") == [path]  # fitted to the same rows
    assert _explore_fingerprint(tmp_path, "iris")["inputs"] == {
        inputs.label_of(path, tmp_path): filecache.sha256_of(path)
    }


def test_an_unknown_data_set_is_refused_before_any_run_folder(tmp_path):
    """The runner's own check (any caller, not only the command line): no fingerprint without the data."""
    from runner.pipeline import run_pipeline
    from runner.spec import load_pipeline

    notebook = str(ROOT / "notebooks/explore.ipynb")
    explore = {"notebook": notebook, "parameters": {"dataset": "/missing/rows.csv"}}
    path = make_project(tmp_path, {"explore": explore}, allow_outside=True)
    with pytest.raises(InputError) as refused:
        run_pipeline(load_pipeline(path), tmp_path / "runs")
    assert "step 'explore'" in str(refused.value) and "unknown data set '/missing/rows.csv'" in str(refused.value)
    assert not (tmp_path / "runs").exists()


def test_file_facts_are_kept_by_stat_and_recomputed_when_it_changes(tmp_path, monkeypatch):
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    store = tmp_path / "runs"
    store.mkdir()
    cache = filecache.FileCache(store / filecache.CACHE_NAME)
    first = cache.sha256(data)
    assert first == filecache.sha256_of(data)
    cache.save()
    # Written a moment ago, so not kept: a second write within the same clock tick could leave its stat equal.
    read = []
    assert filecache.FileCache(store / filecache.CACHE_NAME).fact("sha256", data, read.append) is None
    assert read == [data]

    monkeypatch.setattr(filecache, "RACY_SECONDS", 0.0)  # as if it had been written long ago
    cache.sha256(data)
    cache.save()

    def must_not_read(path):
        raise AssertionError(f"{path} read again though its stat did not change")

    again = filecache.FileCache(store / filecache.CACHE_NAME)  # another process: from the file in the runs folder
    assert again.fact("sha256", data, must_not_read) == first
    rewrite_keeping_mtime(data, lambda p: p.write_text("a,b\n1,3\n"))  # same size, same mtime: ctime moved
    assert again.sha256(data) == filecache.sha256_of(data) != first


def _notebook(path: Path, *cells: str) -> None:
    """A notebook of code cells (the first one its parameters cell) on the project's kernel."""
    body = [
        {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": src}
        for i, src in enumerate(cells)
    ]
    body[0]["metadata"]["tags"] = ["parameters"]
    kernel = {"name": "labline", "display_name": "Python (labline)", "language": "python"}
    nb = {"cells": body, "metadata": {"kernelspec": kernel}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


def test_an_upstream_folder_too_large_to_hash_fails_the_step_that_reads_it(tmp_path, monkeypatch):
    """Known only once the upstream step ran: the reading step fails with the reason, downstream is skipped."""
    monkeypatch.setattr(inputs, "MAX_FOLDER_FILES", 2)
    _notebook(
        tmp_path / "shards.ipynb",
        'count: int = 3\noutput_dir: str = "out"',
        "from pathlib import Path\nimport scrapbook as sb\n"
        "folder = Path(output_dir) / 'shards'\nfolder.mkdir(parents=True)\n"
        "for i in range(count):\n    (folder / f'{i}.txt').write_text(str(i))\n"
        "sb.glue('folder', str(folder.resolve()))",
    )
    steps = {
        "shards": {"notebook": "shards.ipynb"},
        "read": {"notebook": "echo.ipynb", "needs": ["shards"], "parameters": {"source_path": "${shards.folder}"}},
        "after": {"notebook": "consume.ipynb", "needs": ["read"], "parameters": {"value": "${read.doubled}"}},
    }
    make_project(tmp_path, steps)
    record = run(tmp_path)
    assert statuses(record) == {"shards": "succeeded", "read": "failed", "after": "skipped"}
    assert record.manifest["status"] == "failed"
    error = record.manifest["steps"]["read"]["error"]
    assert error["ename"] == "InputError"
    assert "step 'read'" in error["evalue"] and "input source_path: a folder of more than 2 files" in error["evalue"]
