"""Drills with hostile parameters and data (issue 24, faults 4 and 5): each ends before any run folder
or kernel exists, in one line that names what is wrong, with an exit code of runner.exit_codes (no
traceback); a 1 MB value is shortened in the message and in the manifest."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from labline.cli import main
from runner.exit_codes import ExitCode
from tests.fixtures import FIXTURES, ROOT, make_project

MB = 1_048_576


def refused(capsys, *argv: str) -> tuple[int, str]:
    """`labline ARGV` in this process: (exit code, stderr); no traceback, one line when it is short."""
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def no_run_folder(runs: Path) -> bool:
    return not runs.exists() or not [p for p in runs.iterdir() if p.is_dir()]


@pytest.mark.parametrize(
    "param,says",
    [
        ("dataset=census:/etc/passwd", "data file '/etc/passwd' lies outside the project"),
        ("dataset=../../etc/passwd", "etc/passwd' lies outside the project"),
        ("explore.dataset=" + "x" * 300, "is too long: a part of 300 bytes"),
        ("output_dir=/tmp/x", "['output_dir'] is set by the runner"),
        ("explore.run_id=mine", "['run_id'] is set by the runner"),
        ("explore.nosuch=1", "unknown parameter(s) ['nosuch']"),
    ],
)
def test_a_hostile_parameter_is_refused_before_any_run_folder(tmp_path, capsys, param, says):
    runs = tmp_path / "runs"
    code, err = refused(capsys, "run", "-p", param, "-p", "target=species", "--runs", str(runs), "--no-register")
    assert code == ExitCode.USAGE, err
    assert says in err and len(err) < 1000, err
    assert no_run_folder(runs)


def test_a_data_file_outside_the_project_needs_an_allowed_folder(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(ROOT / "data" / "iris_new.csv", data / "rows.csv")
    one_row = data / "one.csv"
    one_row.write_text("sepal_length,species\n5.1,setosa\n")
    monkeypatch.delenv("LABLINE_DATA_DIRS", raising=False)
    argv = ["status", "-p", f"dataset={one_row}", "-p", "target=species", "--runs", str(tmp_path / "runs")]
    code, err = refused(capsys, *argv)
    assert code == ExitCode.USAGE and "lies outside the project" in err and "LABLINE_DATA_DIRS" in err, err
    monkeypatch.setenv("LABLINE_DATA_DIRS", str(data))  # allowed now: its one row is what is refused
    code, err = refused(capsys, *argv)
    assert code == ExitCode.USAGE and "has 1 row(s): the train/test split needs at least 10" in err, err


def test_a_notebook_outside_the_project_needs_allow_outside(tmp_path, capsys):
    project = tmp_path / "project"
    pipeline = make_project(project, {"echo": {"notebook": str(FIXTURES / "echo.ipynb"), "parameters": {"x": 2}}})
    argv = ["status", "--pipeline", str(pipeline), "--runs", str(tmp_path / "runs"), "--format", "json"]
    code, err = refused(capsys, *argv)
    assert code == ExitCode.USAGE and "lies outside the project folder" in err and "--allow-outside" in err, err
    code, err = refused(capsys, *argv, "--allow-outside")
    assert code == ExitCode.OK, err
    body = yaml.safe_load(pipeline.read_text())
    pipeline.write_text(yaml.safe_dump({**body, "allow_outside": True}))
    code, err = refused(capsys, *argv)
    assert code == ExitCode.OK, err


def test_a_one_mb_value_is_shortened_in_the_message_and_the_manifest(tmp_path, capsys):
    pipeline = make_project(tmp_path / "project", {"echo": {"notebook": "echo.ipynb"}})
    runs = tmp_path / "runs"
    code, err = refused(capsys, "run", "--pipeline", str(pipeline), "--runs", str(runs), "-p", "x=" + "9" * MB + "x")
    assert code == ExitCode.USAGE and f"... ({MB + 1} chars)'" in err and len(err) < 1000, err
    code, err = refused(capsys, "run", "--pipeline", str(pipeline), "--runs", str(runs), "-p", "text=" + "t" * MB)
    assert code == ExitCode.OK, err
    manifest_path = next(runs.glob("*/manifest.json"))
    step = json.loads(manifest_path.read_text())["steps"]["echo"]
    recorded = "t" * 4096 + f"... ({MB} chars)"
    assert step["parameters"]["text"] == recorded and step["fingerprint"]["parameters"]["text"] == recorded
    assert step["scraps"]["text"] == "t" * MB  # what the notebook glued is its output, kept whole
    assert manifest_path.stat().st_size < 1.5 * MB  # was 4 MB: the value in parameters, fingerprint and event


def test_an_unwritable_runs_folder_is_one_line_with_the_path():
    folder = Path(tempfile.mkdtemp(prefix="labline-unwritable-"))  # under /tmp, reachable by any user
    try:
        folder.chmod(0o755)
        runs = folder / "locked"
        runs.mkdir(mode=0o555)
        pipeline = make_project(folder / "project", {"echo": {"notebook": "echo.ipynb"}})
        argv = ["-m", "labline.cli", "run", "--pipeline", str(pipeline), "--runs", str(runs / "runs")]
        command = [sys.executable, *argv]
        if os.geteuid() == 0:  # modes do not stop root: run the command as nobody, as a student would be
            if not shutil.which("setpriv"):
                pytest.skip("running as root without setpriv (util-linux): no user whom the folder's mode stops")
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert done.returncode == ExitCode.ENVIRONMENT, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert str(runs / "runs") in done.stderr and "Permission denied" in done.stderr, done.stderr


def test_an_over_long_data_set_name_is_refused_before_the_file_system_is_asked(tmp_path, capsys):
    from labline.data.datasets import DatasetError, load_dataset

    with pytest.raises(DatasetError, match="is too long: a part of 300 bytes"):
        load_dataset("census:" + "y" * 300)  # was OSError: File name too long, from Path.exists
    code, err = refused(capsys, "run", "--dataset", "z" * 300, "--runs", str(tmp_path / "runs"), "--no-register")
    assert code == ExitCode.USAGE and "is too long" in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("source", ["../../etc/passwd", "census:../../etc/passwd", "census:/etc/passwd"])
def test_a_path_outside_the_project_is_refused_as_such_whether_or_not_it_exists(tmp_path, monkeypatch, source):
    """The answer may not depend on where the project lies: a project two folders under a root with no
    etc/passwd is told its path lies outside, not that no such file exists."""
    from labline.data.datasets import DatasetError, data_files

    project = tmp_path / "a" / "b"
    project.mkdir(parents=True)
    (project / "pipeline.yaml").write_text("steps: {}\n")
    monkeypatch.chdir(tmp_path)  # the caller's folder is not the project's: paths are read from `cwd`
    monkeypatch.delenv("LABLINE_DATA_DIRS")  # the suite's own allowance covers tmp_path
    with pytest.raises(DatasetError, match="lies outside the project") as refused:
        data_files(source, cwd=project)
    if "../" in source:  # no such file either: both are said
        assert re.search("no such file|does not exist", str(refused.value)), refused.value
    with pytest.raises(DatasetError, match="no such file|does not exist"):
        data_files(source.replace("../../etc/passwd", "missing.csv").replace("/etc/passwd", "missing.csv"), cwd=project)
