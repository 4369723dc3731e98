"""Every command's documented failure, run as a user runs it (`python -m labline.cli` in a
subprocess), exits with its code of runner.exit_codes.ExitCode: usage, a failed step, a timeout,
Ctrl-C, a monitor alert against a crashed monitor notebook, a gate that refuses, a batch that fails
validation, a retrain that keeps the champion and one that finds another retrain running.

Pipeline runs are few: tiny fixture notebooks for the runner's codes, one hand-made run folder
for the monitor, two small Airbnb retrains (the first makes a champion, the second keeps it)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from labline.data.datasets import read_table
from labline.data.perturb import perturb
from runner.exit_codes import ExitCode
from runner.records import list_runs
from tests.fixtures import ROOT, make_project
from tests.fixtures.cli import run_cli

AIRBNB = ROOT / "data" / "nyc_airbnb_2019_sample.csv.gz"


def test_the_taxonomy_is_the_one_readme_documents():
    readme = (ROOT / "README.md").read_text()
    for code in ExitCode:
        assert f"| `{code.value}` | `{code.name}` |" in readme, f"README's exit-code table lacks {code!r}"


def test_usage_errors_exit_2(tmp_path):
    assert run_cli().returncode == ExitCode.USAGE  # no command: the help
    assert run_cli("run", "--workers", "two").returncode == ExitCode.USAGE  # argparse
    bad = run_cli("run", "--runs", str(tmp_path), "-p", "train_torch.epochs=many")
    assert bad.returncode == ExitCode.USAGE and "does not fit the declared type int" in bad.stderr
    assert not list(tmp_path.iterdir())  # refused before any run folder
    unknown = run_cli("show", "nosuchrun", "--runs", str(tmp_path))
    assert unknown.returncode == ExitCode.USAGE and "no run matching 'nosuchrun'" in unknown.stderr
    margin = run_cli("promote", "--margin", "-1", "--dry-run")
    assert margin.returncode == ExitCode.USAGE and "--margin" in margin.stderr
    missing = run_cli("retrain", "--data", str(tmp_path / "missing.csv"))
    assert missing.returncode == ExitCode.USAGE and "no such file" in missing.stderr


@pytest.fixture(scope="module")
def fixture_project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exit-codes")
    steps = {
        "fails": {"notebook": "fails.ipynb"},
        "sleeps": {"notebook": "sleeps.ipynb", "parameters": {"seconds": 60}},
    }
    return make_project(folder / "project", steps), folder / "runs"


def _run(project, *args, **kwargs):
    pipeline, runs = project
    return run_cli("run", "--pipeline", str(pipeline), "--runs", str(runs), "--no-register", *args, **kwargs)


def _latest(runs: Path) -> dict:
    return list_runs(runs)[-1]


def test_a_failed_step_exits_1_and_a_timeout_3(fixture_project):
    failed = _run(fixture_project, "--only", "fails")
    assert failed.returncode == ExitCode.FAILED, failed.stderr
    assert "ValueError: boom: the input is wrong" in failed.stderr
    timed_out = _run(fixture_project, "--only", "sleeps", "--timeout", "3")
    assert timed_out.returncode == ExitCode.TIMEOUT, timed_out.stderr
    assert _latest(fixture_project[1])["steps"]["sleeps"]["status"] == "timeout"


def test_ctrl_c_exits_130_and_marks_the_run_interrupted(fixture_project):
    pipeline, runs = fixture_project
    command = [sys.executable, "-m", "labline.cli", "run", "--pipeline", str(pipeline), "--runs", str(runs)]
    process = subprocess.Popen([*command, "--no-register", "--only", "sleeps", "--force"], cwd=ROOT, text=True)
    before = {m["run_id"] for m in list_runs(runs)}
    deadline = time.time() + 120
    while time.time() < deadline:  # until the step runs
        new = [m for m in list_runs(runs) if m["run_id"] not in before]
        if new and new[-1]["steps"]["sleeps"]["status"] == "running":
            break
        time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == ExitCode.INTERRUPTED
    assert _latest(runs)["status"] == "interrupted"


@pytest.fixture(scope="module")
def monitored_run(tmp_path_factory):
    """A run folder (snapshot, spec, ridge model) on 3,000 listings, and raw listings it never saw."""
    from tests.fixtures.finished_run import write_finished_run

    base = tmp_path_factory.mktemp("monitored")
    done = write_finished_run(base / "run-1", "airbnb", 3000, "ridge")
    raw = read_table(AIRBNB)
    drifted = perturb(
        raw[~raw["id"].isin(done.seen_ids)].sample(600, random_state=2),
        ["latitude=+0.5sd", "availability_365=+0.5sd", "minimum_nights=*3", "room_type=mix:Shared room:0.3"],
        seed=2,
    )
    batch = base / "drifted.csv"
    drifted.to_csv(batch, index=False)
    return done.run, batch


def _monitor(run: Path, batch: Path, out: Path, *extra: str) -> list[str]:
    return ["monitor", "--source", str(batch), "--reference", str(run), "--out", str(out), *extra]


def test_monitor_alert_exits_1_usage_2(monitored_run, tmp_path):
    run, batch = monitored_run
    env = {"LABLINE_ALERTS": str(tmp_path / "alerts.jsonl")}
    alert = run_cli(*_monitor(run, batch, tmp_path / "alert"), env=env)  # through the monitor notebook
    assert alert.returncode == ExitCode.FAILED, alert.stdout + alert.stderr
    assert "monitor: alert" in alert.stdout
    missing = run_cli(*_monitor(tmp_path / "no-run", batch, tmp_path / "missing"), env=env)
    assert missing.returncode == ExitCode.USAGE and "SourceError" in missing.stderr, missing.stderr


def test_a_crashed_monitor_notebook_exits_5_not_1(monitored_run, tmp_path):
    """The monitor notebook's kernel is killed mid-run: the tool broke, which is no alert."""
    run, batch = monitored_run
    command = [sys.executable, "-m", "labline.cli", *_monitor(run, batch, tmp_path / "out")]
    env = {"LABLINE_ALERTS": str(tmp_path / "alerts.jsonl")}
    process = subprocess.Popen(command, cwd=ROOT, text=True, stderr=subprocess.PIPE, env={**os.environ, **env})
    executed = tmp_path / "out" / "monitor.ipynb"
    killed = False
    deadline = time.time() + 180
    while not killed and time.time() < deadline and process.poll() is None:
        kernels = [
            p for p in psutil.Process(process.pid).children(recursive=True) if "ipykernel" in " ".join(p.cmdline())
        ]
        if kernels and executed.exists():
            for kernel in kernels:
                kernel.kill()
            killed = True
        time.sleep(0.2)
    assert killed, "the monitor's kernel never started"
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == ExitCode.CRASHED, stderr
    assert "the monitor notebook dead_kernel" in stderr


def test_a_stale_exercise_template_exits_1(tmp_path):
    (tmp_path / "solutions").mkdir()
    shutil.copy(ROOT / "solutions" / "01_torch_inference.ipynb", tmp_path / "solutions")
    folders = ["--solutions", str(tmp_path / "solutions"), "--exercises", str(tmp_path / "exercises")]
    done = run_cli("exercises", "check", "--no-run", *folders)
    assert done.returncode == ExitCode.FAILED and "01_torch_inference.ipynb is missing" in done.stdout, done.stdout


def test_a_replay_without_a_request_log_exits_1(tmp_path):
    done = run_cli("replay", "1", "--log", str(tmp_path / "requests.db"))
    assert done.returncode == ExitCode.FAILED and "no request log" in done.stderr, done.stderr


def test_data_validation_failure_exits_1(tmp_path):
    bad = tmp_path / "bad.csv"
    perturb(read_table(AIRBNB).head(300), ["longitude=set:-75.3@0.05"], seed=3).to_csv(bad, index=False)
    done = run_cli("data", "validate", str(bad), "--dataset", "airbnb")
    assert done.returncode == ExitCode.FAILED and "longitude" in done.stdout, done.stdout + done.stderr


@pytest.fixture(scope="module")
def retrain_state(tmp_path_factory):
    """A first retrain on 300 rows makes the champion (explore, train_sklearn, audit_sklearn only)."""
    from labline.data.batches import write_batches

    base = tmp_path_factory.mktemp("retrain")
    raw = read_table(AIRBNB)
    paths = {p.stem: p for p in write_batches(raw, base / "batches", "last_review", "week", since="2019-06-03")}
    env = ["--db", f"sqlite:///{base / 'registry.db'}", "--runs", str(base / "runs"), "--state", str(base / "state")]
    fast = ["--only", "audit_sklearn", "--workers", "1", "-p", "train_sklearn.cv_folds=2"]
    first = run_cli("retrain", "--data", str(paths["before-2019-06-03"]), *env, *fast, "-p", "explore.sample_rows=300")
    assert first.returncode == ExitCode.OK, first.stdout + first.stderr
    return base, paths, env, fast


def test_retrain_that_keeps_the_champion_exits_4_and_a_refused_gate_1(retrain_state):
    base, paths, env, fast = retrain_state
    more = ["-p", "explore.sample_rows=1500", "--margin", "1000000"]
    kept = run_cli("retrain", "--data", str(paths["2019-06-24"]), *env, *fast, *more)
    assert kept.returncode == ExitCode.KEPT_CHAMPION, kept.stdout + kept.stderr
    assert "retrain kept" in kept.stdout and "FAIL metric" in kept.stdout
    refused = run_cli("promote", "--db", env[1], "--dataset", "airbnb", "--margin", "1000000", "--dry-run")
    assert refused.returncode == ExitCode.FAILED, refused.stdout + refused.stderr


def test_retrain_while_another_runs_exits_6(retrain_state):
    from labline.retrain import retrain_lock

    base, paths, env, fast = retrain_state
    with retrain_lock(base / "state"):
        locked = run_cli("retrain", "--data", str(paths["2019-06-24"]), *env, *fast)
    assert locked.returncode == ExitCode.LOCKED and "another retrain is running" in locked.stderr
