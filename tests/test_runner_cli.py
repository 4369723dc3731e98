"""The runner's commands as users call them: exit codes, Ctrl-C, status, sweep, params."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.fixtures import FIXTURES, ROOT, kernel_processes, make_project
from tests.fixtures.cli import run_cli


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "project"
    steps = {
        "make": {"notebook": "echo.ipynb", "parameters": {"x": 3}},
        "nap": {"notebook": "sleeps.ipynb", "parameters": {"seconds": 60}},
    }
    return make_project(folder, steps)


def cli(project, *args, **kwargs):
    return run_cli(*args, "--pipeline", str(project), "--runs", str(project.parent / "runs"), **kwargs)


def manifests(project):
    runs = project.parent / "runs"
    return [json.loads(p.read_text()) for p in sorted(runs.glob("*/manifest.json"))] if runs.exists() else []


def test_params_prints_the_typed_declarations():
    result = run_cli("params", str(FIXTURES / "echo.ipynb"))
    assert result.returncode == 0, result.stderr
    assert "mode: Literal['a', 'b'] = 'a'  # one of two" in result.stdout
    assert "sizes: list[int] = [16]  # glued back" in result.stdout


def test_value_of_the_wrong_type_exits_2_before_anything_runs(project):
    result = cli(project, "run", "-p", "make.x=seven")
    assert result.returncode == 2
    assert "parameter 'x'" in result.stderr and "int" in result.stderr and "'seven'" in result.stderr
    assert manifests(project) == []


def test_timeout_exits_3(project):
    result = cli(project, "run", "--only", "nap", "--timeout", "2")
    assert result.returncode == 3, result.stderr
    assert "timeout" in result.stderr
    run = manifests(project)[-1]
    assert run["steps"]["nap"]["status"] == "timeout"
    assert "Kernel is running over TCP" not in result.stderr + result.stdout


def test_ctrl_c_marks_the_run_interrupted_and_stops_kernels(project):
    before = {m["run_id"] for m in manifests(project)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labline.cli",
            "run",
            "--only",
            "nap",
            "--force",
            "--pipeline",
            str(project),
            "--runs",
            str(project.parent / "runs"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 120
        started = False
        while time.time() < deadline and not started:  # wait until the sleeping cell is executing
            time.sleep(0.5)
            for notebook in (project.parent / "runs").glob("*/nap/sleeps.ipynb"):
                if notebook.parent.parent.name not in before and "application/scrapbook" in notebook.read_text():
                    started = True
        assert started, "the step never started"
        assert kernel_processes(cwd=project.parent)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    run = next(m for m in manifests(project) if m["run_id"] not in before)
    assert run["status"] == "interrupted"
    assert run["steps"]["nap"]["status"] == "interrupted"
    time.sleep(1)
    assert kernel_processes(cwd=project.parent) == []


def test_status_then_sweep(project):
    result = cli(project, "status", "--only", "make", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows[0]["step"] == "make" and rows[0]["action"] == "run" and rows[0]["why"] == "never ran"

    result = cli(
        project,
        "sweep",
        "make",
        "-p",
        "x=1,3,2",
        "-p",
        "sizes=[8],[4,4]",
        "--metric",
        "doubled",
        "--format",
        "json",
        "--workers",
        "2",
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["doubled"] for r in rows] == [6, 6, 4, 4, 2, 2]  # best (largest) first
    assert sorted(map(json.dumps, (r["sizes"] for r in rows))) == sorted(["[8]", "[4, 4]"] * 3)
    sweep_runs = [m for m in manifests(project) if m.get("sweep", {}).get("step") == "make"]
    assert len(sweep_runs) == 6 and len({m["sweep"]["id"] for m in sweep_runs}) == 1
    assert all(m["steps"]["make"]["status"] == "succeeded" for m in sweep_runs)


def test_live_display_tracks_states_and_cells():
    import io

    from rich.console import Console

    from labline.commands.progress import ProgressDisplay

    console = Console(file=io.StringIO(), force_terminal=True, width=100, color_system=None)
    with ProgressDisplay(console, ["explore", "train"]) as display:
        display.on_event("explore", "running", {})
        display.on_event("explore", "cell", {"done": 2, "total": 5})
        display.on_event("train", "cached", {"cached_from": "20261123-000000-abcdef"})
        assert display.rows["explore"]["cells"] == "2/5"
        display.on_event("explore", "failed", {"seconds": 1.25})
    text = console.file.getvalue()
    assert "failed" in text and "2/5" in text and "1.2s" in text and "from run 20261123-000000-abcdef" in text
