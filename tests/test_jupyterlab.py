"""Every notebook, opened in a real JupyterLab on a fresh clone, runs with its defaults on its kernel.

One `jupyter lab` server from the project's environment serves a temporary folder; each notebook
gets a fresh copy of the checkout's notebooks and data (no earlier run of anything) and is run
through the server's REST and kernel websocket API, the way the browser runs it. Asserted: the
notebook declares the `Python (labline)` kernel and the server starts that one; no cell errs
(templates: only at a stub, with the exercise's `NotImplementedError`); every value the notebook
glues is there, with the figures it should compute.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from labline.exercises.template import STUB_EXCEPTION, STUB_PREFIX
from tests.fixtures import literal_glues
from tests.fixtures.lab_server import NOTEBOOK_FOLDERS, ROOT, fresh_copy, lab_server, run_notebook

KERNEL = {"name": "labline", "display_name": "Python (labline)", "language": "python"}
NOTEBOOKS = sorted(str(p.relative_to(ROOT)) for folder in NOTEBOOK_FOLDERS for p in (ROOT / folder).glob("*.ipynb"))
MISSING_KERNEL_MESSAGE = "This notebook needs the `Python (labline)` kernel: run `make install`"
# Glued under a condition (a task, a loop over metrics): what the default run must still produce.
CONDITIONAL_SCRAPS = {
    "notebooks/train_sklearn.ipynb": {"test_accuracy", "macro_f1", "confusion_matrix"},
    "notebooks/train_torch.ipynb": {"test_accuracy", "macro_f1", "confusion_matrix", "val_accuracy"},
    "notebooks/train_torch_scale.ipynb": {"test_accuracy", "macro_f1", "confusion_matrix", "val_accuracy"},
}


def read_notebook(path: str) -> dict:
    return json.loads((ROOT / path).read_text(encoding="utf-8"))


def code_cells(notebook: dict) -> list[str]:
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]


def unconditional_glues(notebook: dict) -> set[str]:
    """Names glued by a literal `sb.glue("name", ...)` at a cell's top level (not under if/for/try)."""
    return literal_glues(notebook, top_level_only=True)


def test_every_notebook_declares_the_project_kernel_and_checks_for_it_first():
    assert len(NOTEBOOKS) >= 14, NOTEBOOKS
    for path in NOTEBOOKS:
        notebook = read_notebook(path)
        assert notebook["metadata"]["kernelspec"] == KERNEL, path
        first = notebook["cells"][0]
        assert first["cell_type"] == "markdown" and "".join(first["source"]).startswith("# "), f"{path}: no title"
        assert MISSING_KERNEL_MESSAGE in code_cells(notebook)[0], f"{path}: the first code cell is not the kernel check"


def test_the_kernel_check_says_what_to_do_on_a_python_without_labline(tmp_path):
    """The first cell, run by a Python that cannot import labline (isolated, no site packages)."""
    check = code_cells(read_notebook("notebooks/explore.ipynb"))[0]
    command = [sys.executable, "-I", "-S", "-c", check]
    result = subprocess.run(command, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"ModuleNotFoundError: {MISSING_KERNEL_MESSAGE}" in result.stderr
    assert "pick that kernel" in result.stderr.splitlines()[-1]
    assert subprocess.run([sys.executable, "-c", check], check=False, capture_output=True, timeout=60).returncode == 0


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root, state = (tmp_path_factory.mktemp("lab-root"), tmp_path_factory.mktemp("lab-state"))
    with lab_server(root, state) as server:
        kernels = server.get("/api/kernelspecs")["kernelspecs"]
        assert "labline" in kernels, f"the server offers {sorted(kernels)}: run `make install` to register the kernel"
        assert kernels["labline"]["spec"]["display_name"] == KERNEL["display_name"]
        yield server


def check_values(path: str, scraps: dict) -> None:
    """The figures a default run computes, beyond their presence."""
    if path == "notebooks/explore.ipynb":
        assert scraps["row_count"] == 150 and scraps["checks_passed"] is True
        assert scraps["class_counts"] == {"setosa": 50, "versicolor": 50, "virginica": 50}
    elif path in CONDITIONAL_SCRAPS:
        assert 0.8 <= scraps["test_accuracy"] <= 1.0 and 0.8 <= scraps["macro_f1"] <= 1.0
    if path == "notebooks/train_torch.ipynb":
        assert len(scraps["loss_curve"]["train_loss"]) == scraps["epochs"] == 200
        assert scraps["loss_curve"]["train_loss"][-1] < scraps["loss_curve"]["train_loss"][0]
    elif path == "notebooks/infer.ipynb":
        assert scraps["row_count"] == len(pd.read_csv(ROOT / "data" / "iris_new.csv"))
    elif path == "notebooks/audit.ipynb":
        assert 0.8 <= scraps["audit_metrics"]["accuracy"] <= 1.0 and isinstance(scraps["audit_passed"], bool)
    elif path == "notebooks/monitor.ipynb":
        assert scraps["status"] in ("healthy", "alert") and scraps["current_rows"] == 30


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_notebook_runs_in_jupyterlab_with_its_defaults_on_a_fresh_clone(lab, path):
    case = path.replace("/", "-").removesuffix(".ipynb")
    clone = fresh_copy(lab.root / case)
    run = run_notebook(lab, f"{case}/{path}")
    assert run.kernel_name == "labline"
    template = path.startswith("exercises/")
    errors = run.errors
    if template:
        assert len(errors) == 1, f"{path}: expected to stop at its first stub, got {errors}"
        ((index, error),) = errors
        assert error["ename"] == STUB_EXCEPTION and error["evalue"].startswith(STUB_PREFIX), (index, error)
        assert run.executed[-1].index == index  # it stopped there, as Run All does
    else:
        assert not errors, f"{path}: " + "; ".join(f"cell {i}: {e['ename']}: {e['evalue']}" for i, e in errors)
        assert [cell.status for cell in run.cells] == ["ok"] * len(code_cells(read_notebook(path)))
        expected = unconditional_glues(read_notebook(path)) | CONDITIONAL_SCRAPS.get(path, set())
        missing = expected - set(run.scraps)
        assert not missing, f"{path}: glued values missing: {sorted(missing)}"
        check_values(path, run.scraps)
    # Everything it wrote is inside its own copy: the checkout's folders got no runs/ of their own.
    assert not any((ROOT / folder / "runs").exists() for folder in NOTEBOOK_FOLDERS)
    assert clone.is_dir()
