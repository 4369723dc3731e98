"""Every step is a papermill execution: what papermill's and scrapbook's own readers see in a run,
the `papermill --engine labline` command, and library code in the cache fingerprint."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from tests.fixtures import make_project

ROOT = Path(__file__).resolve().parents[1]
ERROR_TAG = "papermill-error-cell-tag"


def meta_parameters(path: str) -> dict:
    return json.loads(Path(path).read_text())["metadata"]["papermill"]["parameters"]


def test_executed_notebooks_read_by_scrapbook_and_papermill(iris_run):
    import nbformat
    import papermill as pm
    import scrapbook as sb

    for name, step in iris_run.manifest["steps"].items():
        path = step["output_notebook"]
        book = sb.read_notebook(path)
        assert {k: v for k, v in step["scraps"].items() if not isinstance(v, dict)} == {
            k: s.data for k, s in book.scraps.items() if k in step["scraps"] and not isinstance(step["scraps"][k], dict)
        }
        durations = book.metrics["value"]  # one row per executed cell, from papermill's per-cell duration
        assert len(durations) >= 3 and (durations > 0).all() and durations.sum() > 0.1, name
        assert book.parameters == meta_parameters(path)
        meta = nbformat.read(path, as_version=4).metadata.papermill
        start, end = datetime.fromisoformat(meta["start_time"]), datetime.fromisoformat(meta["end_time"])
        assert end > start and meta["duration"] == pytest.approx((end - start).total_seconds(), abs=0.01)
        assert meta["exception"] is None and meta["version"] == pm.__version__
        assert meta["parameters"]["output_dir"] == step["parameters"]["output_dir"]
        assert "default_parameters" in meta
        declared = set(pm.inspect_notebook(path))  # papermill reads the parameters cell of the executed notebook
        assert set(meta["parameters"]) <= declared
    torch_nb = nbformat.read(iris_run.manifest["steps"]["train_torch"]["output_notebook"], as_version=4)
    cells = [c for c in torch_nb.cells if c.cell_type == "code"]
    assert {c.metadata.papermill["status"] for c in cells} == {"completed"}
    injected = next(c for c in cells if "injected-parameters" in c.metadata.tags)
    assert "epochs = 60" in injected.source
    assert sb.read_notebook(iris_run.manifest["steps"]["train_torch"]["output_notebook"]).parameters["epochs"] == 60


@pytest.fixture(scope="module")
def failing_step(tmp_path_factory):
    from runner.pipeline import run_pipeline
    from runner.spec import load_pipeline

    folder = tmp_path_factory.mktemp("pm-fails")
    pipeline = make_project(folder / "project", {"fails": {"notebook": "fails.ipynb"}})
    record = run_pipeline(load_pipeline(pipeline), pipeline.parent / "runs", workers=1)
    return record.manifest["steps"]["fails"]


def test_failing_step_carries_papermills_error_markers(failing_step):
    import nbformat

    assert failing_step["status"] == "failed"
    nb = nbformat.read(failing_step["output_notebook"], as_version=4)
    markers = [i for i, c in enumerate(nb.cells) if ERROR_TAG in c.metadata.get("tags", [])]
    assert len(markers) == 2 and markers[0] == 0  # the banner on top, the anchor before the failing cell
    failing = nb.cells[markers[1] + 1]
    assert failing.metadata.papermill["exception"] is True and failing.metadata.papermill["status"] == "failed"
    assert nb.metadata.papermill["exception"] is True
    assert [o["evalue"] for o in failing.outputs if o["output_type"] == "error"] == ["boom: the input is wrong"]
    assert f"In [{failing_step['error']['cell']}]" in nb.cells[0].source
    assert failing_step["scraps"] == {"before_failure": 41}


def test_failure_is_a_typed_error(failing_step, tmp_path):
    from runner.execute import StepOutcome

    outcome = StepOutcome(failing_step["status"], failing_step["output_notebook"], error=failing_step["error"])
    error = outcome.failure
    assert (error.status, error.ename, error.evalue) == ("failed", "ValueError", "boom: the input is wrong")
    assert error.cell_index == failing_step["error"]["cell_index"] and error.exec_count == failing_step["error"]["cell"]


def test_papermill_command_with_labline_engine(tmp_path):
    out = tmp_path / "out.ipynb"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "papermill"),
            str(ROOT / "notebooks" / "train_torch.ipynb"),
            str(out),
            "--engine",
            "labline",
            "-p",
            "epochs",
            "5",
            "-p",
            "output_dir",
            str(tmp_path / "torch"),
            "--no-progress-bar",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    import nbformat
    import scrapbook as sb

    book = sb.read_notebook(str(out))
    assert book.scraps["epochs"].data == 5 and len(book.scraps["loss_curve"].data["train_loss"]) == 5
    assert (book.metrics["value"] > 0).all() and book.parameters["epochs"] == 5
    nb = nbformat.read(out, as_version=4)
    assert nb.metadata.papermill["parameters"]["epochs"] == 5 and nb.metadata.kernelspec.name == "labline"
    assert (tmp_path / "torch" / "model" / "manifest.json").exists()


LIB = "def value():\n    return 5\n"
NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "id": "params",
            "metadata": {"tags": ["parameters"]},
            "source": "output_dir: str = 'out'",
            "outputs": [],
            "execution_count": None,
        },
        {
            "cell_type": "code",
            "id": "uses",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": "import scrapbook as sb\nfrom mylib.tools import value\nsb.glue('value', value())",
        },
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def test_changed_library_code_reruns_the_step_and_says_which_file(tmp_path):
    from runner.pipeline import plan_status, run_pipeline
    from runner.spec import load_pipeline

    project = tmp_path / "project"
    pipeline = make_project(project, {"uses": {"notebook": "uses_lib.ipynb"}, "plain": {"notebook": "echo.ipynb"}})
    (project / "mylib").mkdir()
    (project / "mylib" / "__init__.py").write_text("")
    (project / "mylib" / "tools.py").write_text("from .helpers import unused  # noqa\n" + LIB)
    (project / "mylib" / "helpers.py").write_text("unused = 1\n")
    (project / "uses_lib.ipynb").write_text(json.dumps(NOTEBOOK))
    spec = load_pipeline(pipeline)
    first = run_pipeline(spec, project / "runs", workers=2)
    assert first.manifest["steps"]["uses"]["scraps"] == {"value": 5}
    modules = first.manifest["steps"]["uses"]["fingerprint"]["modules"]
    assert set(modules) == {"mylib/__init__.py", "mylib/tools.py", "mylib/helpers.py"}
    assert first.manifest["steps"]["plain"]["fingerprint"]["modules"] == {}
    (project / "mylib" / "helpers.py").write_text("unused = 2\n")  # reached only through tools.py
    rows = {r["step"]: r for r in plan_status(spec, project / "runs")}
    assert rows["uses"]["action"] == "run" and rows["uses"]["reasons"] == ["module mylib/helpers.py changed"]
    assert rows["plain"]["action"] == "cached"
    (project / "mylib" / "tools.py").write_text(LIB.replace("5", "7"))
    second = run_pipeline(spec, project / "runs", workers=2)
    assert second.manifest["steps"]["uses"]["status"] == "succeeded"
    assert second.manifest["steps"]["uses"]["scraps"] == {"value": 7}
    assert second.manifest["steps"]["plain"]["status"] == "cached"


def test_missing_kernel_is_named_with_the_fix(tmp_path):
    from runner.pipeline import run_pipeline
    from runner.spec import load_pipeline

    project = tmp_path / "project"
    pipeline = make_project(project, {"odd": {"notebook": "odd.ipynb"}})
    nb = json.loads(json.dumps(NOTEBOOK))
    nb["metadata"]["kernelspec"]["name"] = "no-such-kernel"
    nb["cells"] = nb["cells"][:1]
    (project / "odd.ipynb").write_text(json.dumps(nb))
    record = run_pipeline(load_pipeline(pipeline), project / "runs", workers=1)
    body = record.manifest["steps"]["odd"]
    assert body["status"] == "failed" and body["error"]["ename"] == "KernelMissing"
    assert "'no-such-kernel'" in body["error"]["evalue"] and "make install" in body["error"]["evalue"]
