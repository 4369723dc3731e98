"""The failure contract, one purpose-made notebook per failure, all in one parallel run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fixtures import files_under, kernel_processes, make_project

EVIL = "x'); import os; os.system('touch {marker}'); ('"


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory):
    from runner.pipeline import run_pipeline
    from runner.spec import load_pipeline

    folder = tmp_path_factory.mktemp("failures")
    marker = folder / "pwned"
    steps = {
        "echo": {"notebook": "echo.ipynb", "parameters": {"x": "3", "text": EVIL.format(marker=marker)}},
        "consume": {
            "notebook": "consume.ipynb",
            "needs": ["echo"],
            "parameters": {"value": "${echo.doubled}", "result_path": "${echo.result_path}"},
        },
        "fails": {"notebook": "fails.ipynb"},
        "after_fails": {"notebook": "consume.ipynb", "needs": ["fails"]},
        "dies": {"notebook": "dies.ipynb"},
        "segfaults": {"notebook": "segfaults.ipynb"},
        "sleeps": {"notebook": "sleeps.ipynb", "timeout": 8, "parameters": {"seconds": 60}},
        "flaky": {"notebook": "flaky.ipynb", "retries": 1},
    }
    pipeline = make_project(folder / "project", steps)
    segfaults = json.loads((pipeline.parent / "dies.ipynb").read_text())
    segfaults["cells"][2]["source"] = "import ctypes\n\nctypes.string_at(0)  # reads address 0: SIGSEGV"
    (pipeline.parent / "segfaults.ipynb").write_text(json.dumps(segfaults))
    before = files_under(pipeline.parent)
    events = []
    record = run_pipeline(
        load_pipeline(pipeline),
        pipeline.parent / "runs",
        workers=3,
        on_event=lambda step, state, details: events.append((step, state)),
    )
    return {
        "record": record,
        "steps": record.manifest["steps"],
        "marker": marker,
        "before": before,
        "after": files_under(pipeline.parent),
        "events": events,
    }


def test_run_fails_but_the_good_steps_finish(failing_run):
    steps = failing_run["steps"]
    assert failing_run["record"].manifest["status"] == "failed"
    assert steps["echo"]["status"] == "succeeded"
    assert steps["echo"]["scraps"]["doubled"] == 6  # "3" from the pipeline converted to int before injection
    assert steps["consume"]["scraps"]["total"] == 12  # 6 from the scrap + 6 read from echo's artifact
    saved = json.loads(Path(failing_run["record"].path / "manifest.json").read_text())
    assert saved["steps"]["consume"]["status"] == "succeeded"


def test_string_parameter_arrives_as_data(failing_run):
    steps = failing_run["steps"]
    assert steps["echo"]["scraps"]["text"] == EVIL.format(marker=failing_run["marker"])
    assert not failing_run["marker"].exists()


def test_exception_keeps_partial_notebook_scraps_and_skips_downstream(failing_run):
    body = failing_run["steps"]["fails"]
    assert body["status"] == "failed"
    assert body["error"]["ename"] == "ValueError"
    assert body["error"]["evalue"] == "boom: the input is wrong"
    assert body["error"]["source_line"] == 'raise ValueError("boom: the input is wrong")'
    assert body["error"]["line"] == 2
    assert body["scraps"] == {"before_failure": 41}
    partial = json.loads(Path(body["output_notebook"]).read_text())
    assert any(o.get("output_type") == "error" for c in partial["cells"] for o in c.get("outputs", []))
    assert failing_run["steps"]["after_fails"]["status"] == "skipped"
    assert "fails" in failing_run["steps"]["after_fails"]["reason"]


def test_dead_kernel_is_reported_not_hung(failing_run):
    body = failing_run["steps"]["dies"]
    assert body["status"] == "dead_kernel"
    assert body["error"]["source_line"] == "os._exit(1)"
    assert (body["error"]["cell_index"], body["error"]["cell_id"]) == (3, "b3dd0b75")  # the cell, by index and id
    assert body["error"]["kernel_exit"] == 1 and body["error"]["evalue"] == "Kernel died (exit code 1)"
    assert (Path(body["output_notebook"]).parent / "kernel.log").is_file()  # kept, even when the kernel wrote nothing
    assert body["scraps"] == {"before_death": 1}
    assert body["seconds"] < 30  # detected by polling, far below any timeout: not a hang


def test_a_crashing_kernel_leaves_the_python_traceback_in_its_log(failing_run):
    body = failing_run["steps"]["segfaults"]
    assert body["status"] == "dead_kernel"
    assert body["error"]["kernel_exit"] == -11 and body["error"]["evalue"] == "Kernel died (killed by SIGSEGV)"
    log = (Path(body["output_notebook"]).parent / "kernel.log").read_text()
    assert "Fatal Python error: Segmentation fault" in log
    assert "in string_at" in log  # the crashing call, from faulthandler in the kernel


def test_whole_notebook_timeout(failing_run):
    body = failing_run["steps"]["sleeps"]
    assert body["status"] == "timeout"
    assert body["error"]["ename"] == "NotebookTimeout"
    assert body["scraps"] == {"started": True}
    assert body["error"]["source_line"] == "time.sleep(seconds)"


def test_retry_succeeds_on_second_attempt(failing_run):
    body = failing_run["steps"]["flaky"]
    assert body["status"] == "succeeded"
    assert [a["status"] for a in body["attempts"]] == ["failed", "succeeded"]
    assert body["attempts"][0]["error"]["evalue"] == "first attempt fails on purpose"
    assert Path(body["attempts"][0]["output_notebook"]).name == "flaky.attempt1.ipynb"
    assert Path(body["attempts"][0]["output_notebook"]).exists()
    assert ("flaky", "retrying") in failing_run["events"]


def test_nothing_outside_the_run_folder_and_no_kernel_left(failing_run):
    assert failing_run["after"] == failing_run["before"]
    run_path = failing_run["record"].path
    for body in failing_run["steps"].values():
        if body.get("output_notebook"):
            assert Path(body["output_notebook"]).is_relative_to(run_path)
    from runner.kernels import KernelLoop

    assert not KernelLoop.get().pool._live
    assert kernel_processes(str(KernelLoop.get().pool._folder)) == []


def test_run_files_are_written_with_the_process_umask(failing_run):
    """Nothing is forced private: a class sharing a runs folder can read every run (issue 24, fault 8)."""
    umask = os.umask(0)
    os.umask(umask)
    paths = [failing_run["record"].path, *failing_run["record"].path.rglob("*")]
    modes = {str(p): p.stat().st_mode & 0o777 for p in paths}
    expected = {str(p): (0o777 if p.is_dir() else 0o666) & ~umask for p in paths}
    assert modes == expected


def test_cell_progress_events(failing_run):
    assert ("echo", "cell") in failing_run["events"]


def test_a_cold_kernel_that_crashes_leaves_the_python_traceback_in_its_log_too(tmp_path, monkeypatch):
    import nbformat

    from runner import provisioner
    from runner.execute import execute_step
    from runner.provisioner import SWITCH, ColdKernelWarning

    monkeypatch.setenv(SWITCH, "0")
    monkeypatch.setattr(provisioner, "_warned", set())  # "said once" per process: leave the suite's own alone
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "labline", "display_name": "Python (labline)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import ctypes\n\nctypes.string_at(0)  # reads address 0: SIGSEGV")]
    with pytest.warns(ColdKernelWarning):
        outcome = execute_step(nb, tmp_path / "crash.ipynb", {}, cwd=tmp_path, timeout=120)
    assert outcome.status == "dead_kernel", outcome.error
    log = (tmp_path / "kernel.log").read_text()
    assert "Fatal Python error: Segmentation fault" in log and "in string_at" in log, log
