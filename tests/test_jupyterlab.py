"""Every notebook, opened in a real JupyterLab on a fresh clone, runs with its defaults on its kernel.

The servers are started as a classroom starts them, `make lab LAB_ARGS=...` (as root when the tests
run as root, as in CI) for the student's Lab and `make lab-instructor` for the solutions; each serves
a temporary folder. Each notebook gets a fresh copy of the checkout's notebooks and data (no earlier
run of anything, committed to a git repository of its own) and is run through the server's REST and
kernel websocket API, the way the browser runs it, then saved with its outputs. Asserted: the
notebook declares the `Python (labline)` kernel and the server starts that one; no cell errs
(templates: only at a stub, with the exercise's `NotImplementedError`); every value the notebook
glues is there, with the figures it should compute; its outputs are under the copy's one `runs/`;
saving leaves `git status` of notebooks/ and exercises/ clean. The student's Lab lists no
`solutions/` and refuses it, and its terminals find `labline` and `papermill` in the project's `.venv/bin`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from labline.exercises.template import STUB_EXCEPTION, STUB_PREFIX
from tests.fixtures import literal_glues
from tests.fixtures.lab_server import (
    NOTEBOOK_FOLDERS,
    ROOT,
    LabServer,
    fresh_copy,
    lab_server,
    run_in_terminal,
    run_notebook,
    save_run,
)

KERNEL = {"name": "labline", "display_name": "Python (labline)", "language": "python"}
NOTEBOOKS = sorted(str(p.relative_to(ROOT)) for folder in NOTEBOOK_FOLDERS for p in (ROOT / folder).glob("*.ipynb"))
MISSING_KERNEL_MESSAGE = "This notebook needs the `Python (labline)` kernel: run `make install`"
# The slow imports a notebook's first cell must announce, by module: the name it says.
HEAVY_IMPORTS = {"torch": "torch", "sklearn": "scikit-learn", "pandas": "pandas", "matplotlib": "matplotlib"}
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
SOURCE_FOLDERS = ("notebooks", "exercises")  # tracked: running one in the Lab must leave git clean
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


def test_the_first_cell_says_what_the_notebook_loads():
    """One line before the slow imports (26-63 s of silence on a loaded machine otherwise), naming each of them."""
    for path in (p for p in NOTEBOOKS if p.startswith("notebooks/")):
        cells = code_cells(read_notebook(path))
        said = re.search(r'^print\("loading ([^"]+)"\)$', cells[0], re.MULTILINE)
        assert said, f"{path}: the first code cell does not print what it loads"
        rest = "\n".join(cells[1:])
        imported = {
            name for module, name in HEAVY_IMPORTS.items() if re.search(rf"^(import|from) {module}\b", rest, re.M)
        }
        assert all(name in said.group(1) for name in imported), (path, said.group(1), imported)


def started_lab(tmp_path_factory, target: str):
    root, state = (tmp_path_factory.mktemp(f"{target}-root"), tmp_path_factory.mktemp(f"{target}-state"))
    with lab_server(root, state, target) as server:
        kernels = server.get("/api/kernelspecs")["kernelspecs"]
        assert "labline" in kernels, f"the server offers {sorted(kernels)}: run `make install` to register the kernel"
        assert kernels["labline"]["spec"]["display_name"] == KERNEL["display_name"]
        yield server


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The student's Lab: `make lab`."""
    yield from started_lab(tmp_path_factory, "lab")


@pytest.fixture(scope="module")
def instructor_lab(tmp_path_factory):
    """`make lab-instructor`: solutions/ shown."""
    yield from started_lab(tmp_path_factory, "lab-instructor")


def test_make_lab_passes_its_arguments_and_says_when_it_adds_allow_root(lab):
    log = lab.log.read_text(errors="replace")
    assert f"--port={lab.url.rsplit(':', 1)[1]}" in log and "--no-browser" in log  # LAB_ARGS reached jupyter lab
    notes = [line for line in log.splitlines() if line.startswith("make lab: running as root")]
    if os.geteuid() == 0:
        assert notes == ["make lab: running as root (a container?), so jupyter lab gets --allow-root"], notes
        assert "--allow-root" in log
    else:
        assert not notes and "--allow-root" not in log


def test_a_lab_terminal_finds_labline_and_papermill_in_the_project_environment(lab):
    printed = ANSI_ESCAPE.sub("", run_in_terminal(lab, "which labline papermill"))
    found = [line.strip() for line in printed.splitlines() if line.strip().startswith("/")]
    venv_bin = ROOT / ".venv" / "bin"
    assert found == [str(venv_bin / "labline"), str(venv_bin / "papermill")], printed


def test_the_student_lab_hides_solutions_and_the_instructor_lab_shows_them(lab, instructor_lab):
    for server in (lab, instructor_lab):
        fresh_copy(server.root / "view")
    listed = {item["name"] for item in lab.get("/api/contents/view")["content"]}
    assert {"notebooks", "exercises", "data"} <= listed and "solutions" not in listed, listed
    solution = next((lab.root / "view" / "solutions").glob("*.ipynb")).name  # on disk, only not served
    for path in ("/api/contents/view/solutions", f"/api/contents/view/solutions/{solution}"):
        assert lab.status_of(path) == 404, path
    assert lab.status_of(f"/files/view/solutions/{solution}") == 404
    assert "solutions" in {item["name"] for item in instructor_lab.get("/api/contents/view")["content"]}
    assert instructor_lab.status_of(f"/api/contents/view/solutions/{solution}") == 200


def committed_clone(dest):
    """A fresh copy of the checkout's notebooks, committed to its own git repository with the project's .gitignore."""
    clone = fresh_copy(dest)
    shutil.copy2(ROOT / ".gitignore", clone / ".gitignore")
    git = ["git", "-C", str(clone), "-c", "user.name=labline", "-c", "user.email=labline@example.invalid"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "fresh clone"]):
        subprocess.run([*git, *args], check=True, capture_output=True, timeout=60)
    return clone


def git_status(clone, *folders: str) -> str:
    command = ["git", "-C", str(clone), "status", "--porcelain", "--", *folders]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=60).stdout


def check_a_working_copy_keeps_its_outputs(server: LabServer, run, clone) -> None:
    """The hook strips only tracked notebooks: the same run saved under work/ keeps outputs and counts."""
    (clone / "work").mkdir()
    copy = f"{clone.name}/work/{run.path.rsplit('/', 1)[1]}"
    save_run(server, run, copy)
    saved = server.get(f"/api/contents/{copy}?type=notebook&content=1")["content"]["cells"]
    code = [c for c in saved if c["cell_type"] == "code"]
    assert all(isinstance(c["execution_count"], int) for c in code), [c["execution_count"] for c in code]
    assert code[0]["outputs"][0]["text"].startswith("loading "), code[0]["outputs"]


def check_values(path: str, scraps: dict) -> None:
    """The figures a default run computes, beyond their presence."""
    if path == "notebooks/explore.ipynb":
        assert scraps["row_count"] == 150 and scraps["checks_passed"] is True
        assert scraps["class_counts"] == {"setosa": 50, "versicolor": 50, "virginica": 50}
    elif path in CONDITIONAL_SCRAPS:
        assert 0.8 <= scraps["test_accuracy"] <= 1.0 and 0.8 <= scraps["macro_f1"] <= 1.0
    if path == "notebooks/train_torch.ipynb":
        assert len(scraps["loss_curve"]["train_loss"]) == scraps["epochs"] <= 200  # a ceiling: it stops early
        assert 1 <= scraps["best_epoch"] <= scraps["epochs"] and scraps["stop_reason"]
        assert scraps["loss_curve"]["train_loss"][-1] < scraps["loss_curve"]["train_loss"][0]
    elif path == "notebooks/infer.ipynb":
        assert scraps["row_count"] == len(pd.read_csv(ROOT / "data" / "iris_new.csv"))
    elif path == "notebooks/audit.ipynb":
        assert 0.8 <= scraps["audit_metrics"]["accuracy"] <= 1.0 and isinstance(scraps["audit_passed"], bool)
    elif path == "notebooks/monitor.ipynb":
        assert scraps["status"] in ("healthy", "alert") and scraps["current_rows"] == 30


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_notebook_runs_in_jupyterlab_with_its_defaults_on_a_fresh_clone(request, path):
    """notebooks/ and exercises/ in the student's Lab; solutions/ (hidden there) in the instructor's."""
    lab = request.getfixturevalue("instructor_lab" if path.startswith("solutions/") else "lab")
    case = path.replace("/", "-").removesuffix(".ipynb")
    clone = committed_clone(lab.root / case)
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
    if path.startswith("notebooks/"):  # said what it loads, and wrote under the project's one runs/
        assert run.cells[0].outputs[0]["text"].startswith("loading "), run.cells[0].outputs
        assert (clone / "runs" / "notebook" / case.removeprefix("notebooks-")).is_dir()
    # Everything it wrote is inside its own copy, and no notebook folder got a runs/ of its own.
    assert not any((ROOT / folder / "runs").exists() for folder in NOTEBOOK_FOLDERS)
    assert not any((clone / folder / "runs").exists() for folder in NOTEBOOK_FOLDERS)
    # Saved with its outputs as the Lab saves it: the tracked notebooks and templates do not change.
    save_run(lab, run)
    assert git_status(clone, *SOURCE_FOLDERS) == ""
    if path == "notebooks/explore.ipynb":
        check_a_working_copy_keeps_its_outputs(lab, run, clone)
