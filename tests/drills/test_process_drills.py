"""Process drills: each does the harm for real to a real `labline run` (signals, a killed kernel, a
read-only runs folder, a full disk) and checks the clear state it ends in (docs/reliability.md).

Each drill runs the tiny fixture notebooks (sleeps.ipynb, echo.ipynb) in a throw-away project."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from labline.cli import main
from runner.contracts import RunManifest, RunStatus, StepStatus
from runner.exit_codes import ExitCode
from runner.owner import OWNER_FILE, ProcessOwner, claim_folder, remove_orphan_folders
from tests.fixtures import kernel_processes, make_project

LABLINE = [sys.executable, "-m", "labline.cli"]
SLEEP_CELL_ID = "fac82c70"  # sleeps.ipynb's `time.sleep(seconds)` cell
KERNEL_FOLDERS = Path("/tmp")


def sleeping_project(folder: Path, seconds: float = 120) -> Path:
    """A project whose one step sleeps in its third code cell; returns the project folder."""
    return make_project(folder, {"sleeps": {"notebook": "sleeps.ipynb", "parameters": {"seconds": seconds}}}).parent


def labline(project: Path, *args: str, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    """`labline ARGS` started in `project` (its runs/ folder), with `env` added to ours."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "LABLINE_RUNS": "", **(env or {})}
    return subprocess.Popen(
        [*LABLINE, *args], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def wait_for(check, what: str, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def the_run(project: Path) -> Path:
    (run,) = [p for p in (project / "runs").iterdir() if p.is_dir()]
    return run


def manifest(project: Path) -> dict:
    return json.loads((the_run(project) / "manifest.json").read_text())


def sleep_cell_started(project: Path) -> bool:
    """The executed notebook (written after each cell) shows papermill started the sleeping cell."""
    try:
        notebook = json.loads((the_run(project) / "sleeps" / "sleeps.ipynb").read_text())
    except (OSError, ValueError):
        return False
    cell = next((c for c in notebook["cells"] if c.get("id") == SLEEP_CELL_ID), {})
    return bool((cell.get("metadata", {}).get("papermill") or {}).get("start_time"))


def kernel_folder_of(pid: int) -> Path | None:
    """The /tmp/runner-kernels-* folder whose owner file names process `pid`."""
    for folder in KERNEL_FOLDERS.glob("runner-kernels-*"):
        try:
            if json.loads((folder / OWNER_FILE).read_text())["pid"] == pid:
                return folder
        except (OSError, ValueError, KeyError):
            continue
    return None


def started_sleeping(project: Path, process: subprocess.Popen) -> Path:
    """Wait until the run sleeps in its kernel; the run's kernel folder."""
    folder = wait_for(lambda: kernel_folder_of(process.pid), "the run's kernel folder")
    wait_for(lambda: sleep_cell_started(project), "the sleeping cell to start")
    assert kernel_processes(f"{folder}{os.sep}"), "the step's kernel should be running"
    return folder


def test_sigint_ends_the_run_interrupted_with_no_kernel_or_folder_left(tmp_path):
    project = sleeping_project(tmp_path / "project")
    process = labline(project, "run")
    folder = started_sleeping(project, process)
    process.send_signal(signal.SIGINT)
    code, _, err = finish(process)
    assert code == ExitCode.INTERRUPTED, err
    run = manifest(project)
    assert run["status"] == RunStatus.INTERRUPTED
    assert run["steps"]["sleeps"]["status"] == StepStatus.INTERRUPTED
    assert kernel_processes(f"{folder}{os.sep}") == []
    assert not folder.exists()


def test_sigkill_shows_the_run_died_and_the_next_run_cleans_its_kernels(tmp_path, monkeypatch, capsys):
    project = sleeping_project(tmp_path / "project")
    process = labline(project, "run")
    folder = started_sleeping(project, process)
    process.kill()
    finish(process)
    assert manifest(project)["status"] == RunStatus.RUNNING  # what it last wrote: history is not rewritten

    monkeypatch.chdir(project)
    monkeypatch.delenv("LABLINE_RUNS", raising=False)
    capsys.readouterr()
    assert main(["runs", "--format", "json"]) == ExitCode.OK
    assert [row["status"] for row in json.loads(capsys.readouterr().out)] == [RunStatus.DIED]
    assert main(["show", "latest", "--json"]) == ExitCode.OK
    shown = json.loads(capsys.readouterr().out)
    assert (shown["status"], shown["steps"]["sleeps"]["status"]) == (RunStatus.DIED, StepStatus.INTERRUPTED)
    assert main(["show", "latest"]) == ExitCode.OK
    assert re.search(r"^sleeps interrupted ", capsys.readouterr().out, re.MULTILINE)

    code, _, err = finish(labline(sleeping_project(tmp_path / "next", seconds=0), "run"))
    assert code == ExitCode.OK, err
    assert not folder.exists()
    assert kernel_processes(f"{folder}{os.sep}") == []


def test_sigkill_of_the_kernel_names_the_cell_and_keeps_its_log(tmp_path):
    project = sleeping_project(tmp_path / "project")
    process = labline(project, "run")
    folder = started_sleeping(project, process)
    for pid in kernel_processes(f"{folder}{os.sep}"):
        os.kill(pid, signal.SIGKILL)
    code, out, err = finish(process)
    assert code == ExitCode.FAILED, err
    step = manifest(project)["steps"]["sleeps"]
    assert step["status"] == StepStatus.DEAD_KERNEL
    error = step["error"]
    assert (error["cell_id"], error["source_line"], error["kernel_exit"]) == (
        SLEEP_CELL_ID,
        "time.sleep(seconds)",
        -signal.SIGKILL,
    )
    assert error["cell_index"] == 3  # parameters, injected parameters, imports, then the sleep
    assert "killed by SIGKILL" in error["evalue"] and "killed by SIGKILL" in out + err
    assert (the_run(project) / "sleeps" / "kernel.log").is_file()
    assert not folder.exists()


def _read_only(folder: Path) -> None:
    """Make `folder` read-only for this user: a mode for a plain user; for root (whom modes do not
    stop) a read-only tmpfs mounted over it, or a skip where mounting is not allowed."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"running as root and cannot mount a read-only tmpfs: {mounted.stderr.decode().strip()}")


def _writable_again(folder: Path) -> None:
    if os.geteuid() != 0:
        folder.chmod(0o755)
    else:
        subprocess.run(["umount", str(folder)], capture_output=True)


def test_a_read_only_runs_folder_is_one_line_and_an_exit_code(tmp_path):
    project = sleeping_project(tmp_path / "project", seconds=0)
    runs = project / "runs"
    runs.mkdir()
    _read_only(runs)
    try:
        code, _, err = finish(labline(project, "run"))
    finally:
        _writable_again(runs)
    assert code == ExitCode.ENVIRONMENT, err
    assert "Traceback" not in err and ("Read-only file system" in err or "Permission denied" in err), err
    assert str(runs) in err and len(err.strip().splitlines()) == 1, err
    assert list(runs.iterdir()) == []


def test_a_full_disk_fails_the_run_with_the_manifest_whole(tmp_path):
    """RLIMIT_FSIZE makes every write past 32 KiB fail as a full disk does (EFBIG, like ENOSPC, from
    write()); a 100 KB parameter makes the manifest (or the executed notebook) cross it."""
    limit = 32 * 1024
    project = make_project(tmp_path / "project", {"echo": {"notebook": "echo.ipynb"}}).parent

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    process = labline(project, "run", "-p", "echo.text=" + "y" * 100_000, preexec_fn=small_files)
    code, _, err = finish(process)
    # a step's notebook write that fails fails the step (1); a manifest write, the command (7)
    assert code in (ExitCode.FAILED, ExitCode.ENVIRONMENT), err
    assert re.search(r"File too large: '[^']+(echo\.ipynb|manifest\.json)'", err) and "Traceback" not in err, err
    run = the_run(project)
    assert json.loads((run / "manifest.json").read_text())["run_id"] == run.name  # whole, the last good version
    assert [p.name for p in run.rglob("*.tmp")] == []
    shutil.rmtree(project / "runs")


def _exited_pid() -> int:
    """The pid of a process that has exited and been reaped (not reused within this test)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_an_owner_is_gone_only_when_certain():
    me = ProcessOwner.me()
    assert not me.gone()
    assert ProcessOwner(_exited_pid(), me.host, me.started).gone()
    assert ProcessOwner(me.pid, me.host, me.started + "0").gone()  # the pid now names another process
    assert not ProcessOwner(_exited_pid(), "another-host", "").gone()  # nothing known about other hosts
    running = RunManifest("r", "p", "now", process=ProcessOwner(_exited_pid(), me.host, ""))
    assert running.seen_status is RunStatus.DIED
    assert replace(running, status=RunStatus.FAILED).seen_status is RunStatus.FAILED  # an ending stays as written
    assert replace(running, process=me).seen_status is RunStatus.RUNNING
    assert replace(running, process=None).seen_status is RunStatus.RUNNING  # a manifest older than `process`


def test_only_folders_of_gone_owners_are_removed(tmp_path):
    dead, alive, unknown = (tmp_path / f"runner-kernels-{name}" for name in ("dead", "alive", "unknown"))
    for folder in (dead, alive, unknown):
        folder.mkdir()
    claim_folder(alive)
    (dead / OWNER_FILE).write_text(json.dumps({**ProcessOwner.me().to_dict(), "pid": _exited_pid()}))
    assert remove_orphan_folders("runner-kernels-*", tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runner-kernels-alive", "runner-kernels-unknown"]
