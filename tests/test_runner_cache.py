"""Incremental runs: what invalidates a step's cache and what does not."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.fixtures import make_project


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A two-step pipeline run once (executed) and once more (all cached)."""
    from runner.pipeline import run_pipeline
    from runner.spec import load_pipeline

    folder = tmp_path_factory.mktemp("cache") / "project"
    folder.mkdir(parents=True)
    (folder / "data.txt").write_text("first version\n")
    (folder / "requirements.lock").write_text("numpy==2.0.0\n")
    steps = {
        "make": {"notebook": "echo.ipynb", "parameters": {"x": 3, "source_path": "data.txt"}},
        "use": {
            "notebook": "consume.ipynb",
            "needs": ["make"],
            "parameters": {"value": "${make.doubled}", "result_path": "${make.result_path}"},
        },
    }
    pipeline = make_project(folder, steps)
    spec = load_pipeline(pipeline)
    first = run_pipeline(spec, folder / "runs", workers=2)
    second = run_pipeline(spec, folder / "runs", workers=2)
    return {"folder": folder, "spec": spec, "first": first, "second": second}


def status(project, **kwargs):
    from runner.pipeline import plan_status
    from runner.spec import load_pipeline

    rows = plan_status(load_pipeline(project["folder"] / "pipeline.yaml"), project["folder"] / "runs", **kwargs)
    return {row["step"]: row for row in rows}


def edit_notebook(path, change):
    nb = json.loads(path.read_text())
    change(nb)
    path.write_text(json.dumps(nb, indent=1))


def test_first_run_executes_second_reuses(project):
    first, second = project["first"].manifest, project["second"].manifest
    assert {s["status"] for s in first["steps"].values()} == {"succeeded"}
    assert {s["status"] for s in second["steps"].values()} == {"cached"}
    assert second["steps"]["use"]["cached_from"] == first["run_id"]
    assert second["steps"]["use"]["scraps"] == first["steps"]["use"]["scraps"] == {"total": 12}
    assert second["status"] == "succeeded"
    assert first["steps"]["make"]["fingerprint"]["digest"] == second["steps"]["make"]["fingerprint"]["digest"]


def test_status_says_cached_when_nothing_changed(project):
    rows = status(project)
    assert [rows[s]["action"] for s in ("make", "use")] == ["cached", "cached"]
    assert rows["use"]["from_run"] == project["first"].run_id


def test_markdown_and_outputs_do_not_invalidate(project, tmp_path):
    notebook = project["folder"] / "echo.ipynb"
    backup = tmp_path / "echo.ipynb"
    shutil.copy(notebook, backup)

    def cosmetic(nb):
        nb["cells"][0]["source"] = "# Echo, reworded\nNothing but prose changed."
        code = next(c for c in nb["cells"] if c["cell_type"] == "code" and "doubled =" in "".join(c["source"]))
        code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "stale output\n"}]
        code["execution_count"] = 7
        code["metadata"]["collapsed"] = True

    try:
        edit_notebook(notebook, cosmetic)
        assert status(project)["make"]["action"] == "cached"
    finally:
        shutil.copy(backup, notebook)


def test_code_change_invalidates_the_step_and_downstream(project, tmp_path):
    notebook = project["folder"] / "echo.ipynb"
    backup = tmp_path / "echo.ipynb"
    shutil.copy(notebook, backup)

    def code(nb):
        cell = next(c for c in nb["cells"] if c["cell_type"] == "code" and "doubled =" in "".join(c["source"]))
        cell["source"] = "".join(cell["source"]).replace("x * 2", "x * 2 + 0")

    try:
        edit_notebook(notebook, code)
        rows = status(project)
        assert rows["make"]["action"] == "run"
        assert rows["make"]["reasons"] == ["notebook code changed"]
        assert rows["use"]["action"] == "run"
        assert rows["use"]["reasons"] == ["upstream step make will run"]
    finally:
        shutil.copy(backup, notebook)


def test_parameter_change_invalidates(project):
    rows = status(project, overrides=["make.x=5"])
    assert rows["make"]["action"] == "run"
    assert rows["make"]["reasons"] == ["parameter x: 3 -> 5"]


def test_input_file_change_invalidates(project):
    data = project["folder"] / "data.txt"
    original = data.read_text()
    try:
        data.write_text("second version\n")
        rows = status(project)
        assert rows["make"]["reasons"] == ["input source_path changed"]
    finally:
        data.write_text(original)
    assert status(project)["make"]["action"] == "cached"


def test_requirements_lock_change_invalidates(project):
    lock = project["folder"] / "requirements.lock"
    original = lock.read_text()
    try:
        lock.write_text("numpy==2.1.0\n")
        rows = status(project)
        assert rows["make"]["reasons"] == ["requirements.lock changed"]
    finally:
        lock.write_text(original)


def test_force_executes_again_and_downstream_reuses_identical_outputs(project):
    from runner.pipeline import run_pipeline

    assert status(project, force=["make"])["make"]["reasons"] == ["forced"]
    record = run_pipeline(project["spec"], project["folder"] / "runs", workers=2, force=["make"])
    steps = record.manifest["steps"]
    assert steps["make"]["status"] == "succeeded"
    # make wrote the same bytes again, so the step that reads them is still up to date
    assert steps["use"]["status"] == "cached"


def test_unknown_forced_step_is_refused(project):
    from runner.errors import RunnerError
    from runner.pipeline import run_pipeline

    with pytest.raises(RunnerError, match="unknown step") as info:
        run_pipeline(project["spec"], project["folder"] / "runs", force=["nope"])
    assert info.value.exit_code == 2


def test_iris_rerun_with_nothing_changed_is_all_cached(iris_run, tmp_path):
    """The real pipeline: a second run over the same runs folder executes nothing."""
    from runner.pipeline import run_pipeline
    from runner.spec import load_pipeline
    from tests.fixtures import FAST_OVERRIDES, ROOT

    runs = tmp_path / "runs"
    shutil.copytree(iris_run.path, runs / iris_run.run_id)  # outputs stay where the fixture put them
    record = run_pipeline(load_pipeline(ROOT / "pipeline.yaml"), runs, overrides=FAST_OVERRIDES, workers=2)
    steps = record.manifest["steps"]
    assert {s["status"] for s in steps.values()} == {"cached"}
    assert {s["cached_from"] for s in steps.values()} == {iris_run.run_id}
    assert (
        steps["train_torch"]["scraps"]["test_accuracy"]
        == iris_run.manifest["steps"]["train_torch"]["scraps"]["test_accuracy"]
    )


def test_a_rerun_with_nothing_changed_reads_no_file_again(project, monkeypatch):
    """Hashes and import lists come from the runs folder's file cache while each file's stat is unchanged."""
    from runner import filecache

    monkeypatch.setattr(filecache, "RACY_SECONDS", 0.0)  # as if every file had been written long ago
    monkeypatch.setattr(filecache, "_shared", {})  # a new process: nothing remembered in memory
    assert {row["action"] for row in status(project).values()} == {"cached"}  # learns, and saves
    assert (project["folder"] / "runs" / filecache.CACHE_NAME).exists()

    def read_again(path):
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(filecache, "_shared", {})
    monkeypatch.setattr(filecache, "sha256_of", read_again)
    monkeypatch.setattr("runner.cache.source_imports", read_again)
    monkeypatch.setattr("runner.cache.notebook_facts", read_again)
    assert {row["action"] for row in status(project).values()} == {"cached"}
