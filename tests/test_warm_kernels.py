"""Warm kernels: forked from a template, a kernel behaves as a cold one would, and none is left behind.

Real kernels through `runner.execute.execute_step` (papermill on labline's engine), and real
`labline run` processes for the endings (a run, Ctrl-C, a SIGKILLed kernel) and the fallback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import nbformat
import psutil
import pytest
import yaml

from runner.execute import execute_step
from runner.kernels import KernelLoop
from runner.provisioner import SWITCH, ColdKernelWarning
from tests.fixtures import ROOT

ENV_NAME = "LABLINE_TEST_STEP_ENV"
# What a notebook can see of its kernel; glued as one scrap.
PROBE = f"""
import os, random, sys
import numpy, torch
from scrapbook import glue
torch.set_num_threads(2)  # the native thread pools (OpenMP, OpenBLAS) work after the fork
ones = numpy.ones((300, 300))
product = float((torch.ones(300, 300) @ torch.ones(300, 300))[0, 0] + (ones @ ones)[0, 0])
glue("seen", dict(
    product=product,
    pid=os.getpid(), ppid=os.getppid(), cwd=os.getcwd(), env=os.environ.get({ENV_NAME!r}),
    path=sys.path, argv0=sys.argv[0], argv1=sys.argv[1], orig_argv=sys.orig_argv[:4],
    files=[numpy.__file__, torch.__file__, sys.modules["ipykernel"].__file__],
    names=sorted(n for n in globals() if not n.startswith("_")),
    sklearn_loaded="sklearn" in sys.modules,
    numpy_draw=float(numpy.random.rand()), torch_seed=torch.initial_seed(), python_draw=random.random(),
))
leaked_from_this_notebook = True
"""


def notebook(*sources: str, kernel: str = "labline") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    return nb


def templates() -> list:
    pool = KernelLoop.get().pool
    return KernelLoop.get().run(_templates(pool))


async def _templates(pool) -> list:
    return pool.templates.all()


def wait_for_import(*modules: str, timeout: float = 180) -> None:
    """Have the `labline` kernels' template import `modules` and wait until it has: a kernel whose
    notebook imports nothing else is then forked from it."""
    loop = KernelLoop.get()
    loop.call(loop.pool.preload, "labline", modules)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(t.has_imported(modules) for t in templates()):
            return
        time.sleep(0.2)
    raise AssertionError(f"the template did not import {modules} within {timeout} s")


def probe(folder: Path, name: str, env_value: str) -> dict:
    os.environ[ENV_NAME] = env_value
    try:
        outcome = execute_step(notebook(PROBE), folder / f"{name}.ipynb", {}, cwd=folder, timeout=300)
    finally:
        os.environ.pop(ENV_NAME, None)
    assert outcome.status == "succeeded", outcome.error
    return outcome.scraps["seen"]


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    """Two forked kernels and two cold ones (LABLINE_WARM_KERNELS=0) run the same probe."""
    folder = tmp_path_factory.mktemp("warm")
    (folder / "step").mkdir()
    wait_for_import("numpy", "torch", "sklearn")  # sklearn: imported by the template only, no probe imports it
    result = {"a": probe(folder / "step", "a", "step-a"), "b": probe(folder / "step", "b", "step-b")}
    result["templates"] = [t.process.pid for t in templates()]
    os.environ[SWITCH] = "0"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result["cold"] = probe(folder / "step", "cold", "step-cold")
            result["cold2"] = probe(folder / "step", "cold2", "step-cold")
    finally:
        os.environ.pop(SWITCH)
    result["warnings"] = [str(w.message) for w in caught if issubclass(w.category, ColdKernelWarning)]
    result["folder"] = folder / "step"
    return result


def test_a_forked_kernel_is_the_templates_child_and_holds_its_imports(seen):
    for forked in (seen["a"], seen["b"]):
        assert forked["product"] == 600.0  # torch's and numpy's parallel matrix products ran in the fork
        assert forked["ppid"] in seen["templates"]
        assert "forkserver.py" in " ".join(psutil.Process(forked["ppid"]).cmdline())
        assert forked["sklearn_loaded"]  # imported by the template before the fork
    assert seen["cold"]["ppid"] == os.getpid()  # a cold kernel is the runner's own child
    assert not seen["cold"]["sklearn_loaded"]


def test_a_forked_kernel_sees_the_steps_cwd_environment_and_fresh_globals(seen):
    a, b, cold = seen["a"], seen["b"], seen["cold"]
    assert a["cwd"] == b["cwd"] == str(seen["folder"])
    assert (a["env"], b["env"]) == ("step-a", "step-b")  # the environment at the kernel's start, not the template's
    assert "leaked_from_this_notebook" not in b["names"]  # b ran after a, from the same template
    assert a["names"] == b["names"] == cold["names"]


def test_a_forked_kernel_has_a_cold_kernels_path_argv_and_modules(seen):
    a, cold = seen["a"], seen["cold"]
    assert a["path"] == cold["path"]
    assert a["files"] == cold["files"]
    assert (a["argv0"], a["argv1"], a["orig_argv"]) == (cold["argv0"], cold["argv1"], cold["orig_argv"])
    assert a["argv0"].endswith("ipykernel_launcher.py")


def test_two_forked_kernels_share_no_random_state(seen):
    a, b = seen["a"], seen["b"]
    assert a["numpy_draw"] != b["numpy_draw"]  # numpy's global RandomState is reseeded in each
    assert a["torch_seed"] != b["torch_seed"]  # so is torch's default generator, random at start as cold
    assert a["python_draw"] != b["python_draw"]


def test_starting_cold_is_said_once(seen):
    assert seen["cold"]["ppid"] == seen["cold2"]["ppid"] == os.getpid()
    assert seen["warnings"] == [f"labline: kernels start cold: {SWITCH}=0"]


def test_a_kernel_that_dies_is_reported_and_the_next_step_gets_a_fresh_one(tmp_path):
    dies = notebook("import os\nfrom scrapbook import glue\nglue('pid', os.getpid())", "os._exit(3)")
    outcome = execute_step(dies, tmp_path / "dies.ipynb", {}, cwd=tmp_path)
    assert outcome.status == "dead_kernel"
    dead = outcome.scraps["pid"]
    time.sleep(0.5)
    assert not psutil.pid_exists(dead)  # reaped by its template: not even a zombie
    after = execute_step(notebook(PROBE), tmp_path / "after.ipynb", {}, cwd=tmp_path)
    assert after.status == "succeeded", after.error
    assert after.scraps["seen"]["pid"] != dead
    assert after.scraps["seen"]["ppid"] in [t.process.pid for t in templates()]


def test_a_kernelspec_that_is_not_the_launcher_starts_cold_and_says_why(tmp_path, monkeypatch):
    spec = tmp_path / "share" / "jupyter" / "kernels" / "wrapped"
    spec.mkdir(parents=True)
    launch = "import sys; from ipykernel.kernelapp import launch_new_instance; sys.exit(launch_new_instance())"
    argv = [sys.executable, "-c", launch, "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "wrapped", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    glue_ppid = "import os\nfrom scrapbook import glue\nglue('ppid', os.getppid())"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = execute_step(notebook(glue_ppid, kernel="wrapped"), tmp_path / "out.ipynb", {}, cwd=tmp_path)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.scraps["ppid"] == os.getpid()
    said = [str(w.message) for w in caught if issubclass(w.category, ColdKernelWarning)]
    assert len(said) == 1 and "not Python's ipykernel launcher" in said[0]


# --- `labline run`: no kernel and no template left, whatever the ending --------------------------

STEP = """
import json, os, time
from pathlib import Path
Path("pids").mkdir(exist_ok=True)
parent = Path(f"/proc/{{os.getppid()}}/cmdline").read_bytes()
Path("pids", {name!r} + ".json").write_text(json.dumps([os.getpid(), os.getppid(), b"forkserver.py" in parent]))
time.sleep(seconds)
"""


def project(folder: Path, seconds: dict[str, float]) -> Path:
    """A pipeline of independent steps that record their kernel's pid and parent, then sleep."""
    folder.mkdir(parents=True, exist_ok=True)
    steps = {}
    for name, wait in seconds.items():
        nb = notebook("seconds: float = 0.0\noutput_dir: str = 'out'", STEP.format(name=name))
        nb.cells[0].metadata["tags"] = ["parameters"]
        nbformat.write(nb, folder / f"{name}.ipynb")
        steps[name] = {"notebook": f"{name}.ipynb", "parameters": {"seconds": wait}}
    (folder / "pipeline.yaml").write_text(yaml.safe_dump({"name": "warm", "steps": steps}))
    return folder / "pipeline.yaml"


def labline_run(pipeline: Path, env: dict | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "labline.cli", "run", "--pipeline", str(pipeline)]
    command += ["--runs", str(pipeline.parent / "runs"), "--no-register", "--workers", "2"]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def recorded_pids(pipeline: Path, steps, timeout: float = 180) -> dict[str, list]:
    """Each step's [kernel pid, its parent's pid, whether that parent is a template], once all wrote it."""
    folder = pipeline.parent / "pids"
    deadline = time.time() + timeout
    while time.time() < deadline:
        files = {s: folder / f"{s}.json" for s in steps}
        if all(f.exists() and f.stat().st_size for f in files.values()):
            return {s: json.loads(f.read_text()) for s, f in files.items()}
        time.sleep(0.2)
    raise AssertionError(f"the steps did not start within {timeout} s")


def left_over(pids: dict[str, list]) -> list[int]:
    every = {pid for pid, ppid, _ in pids.values()} | {ppid for _, ppid, _ in pids.values()}
    return sorted(p for p in every if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE)


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _, err = process.communicate(timeout=timeout)
    time.sleep(0.5)  # the kernels' own exit after SIGKILL
    return process.returncode, err


def test_no_process_left_after_a_run(tmp_path):
    pipeline = project(tmp_path, {"one": 0, "two": 0})
    process = labline_run(pipeline)
    code, err = finish(process)
    assert code == 0, err
    pids = recorded_pids(pipeline, ["one", "two"], timeout=1)
    assert all(from_template for _, _, from_template in pids.values())
    assert left_over(pids) == []
    assert "start cold" not in err


def test_no_process_left_after_ctrl_c(tmp_path):
    pipeline = project(tmp_path, {"one": 120, "two": 120})
    process = labline_run(pipeline)
    pids = recorded_pids(pipeline, ["one", "two"])
    assert all(from_template for _, _, from_template in pids.values())
    assert len(left_over(pids)) == 3  # two kernels and their template, running
    process.send_signal(signal.SIGINT)
    code, err = finish(process, timeout=60)
    assert code == 130, err
    assert left_over(pids) == []


def test_no_process_left_after_a_kernel_is_killed(tmp_path):
    pipeline = project(tmp_path, {"one": 120, "two": 3})
    process = labline_run(pipeline)
    pids = recorded_pids(pipeline, ["one", "two"])
    os.kill(pids["one"][0], signal.SIGKILL)
    code, err = finish(process, timeout=120)
    assert code == 1, err
    manifest = json.loads(next((pipeline.parent / "runs").glob("*/manifest.json")).read_text())
    assert manifest["steps"]["one"]["status"] == "dead_kernel"
    assert manifest["steps"]["two"]["status"] == "succeeded"
    assert left_over(pids) == []


def test_no_process_left_after_the_runner_is_killed(tmp_path):
    pipeline = project(tmp_path, {"one": 120, "two": 120})
    process = labline_run(pipeline)
    pids = recorded_pids(pipeline, ["one", "two"])
    assert len(left_over(pids)) == 3
    process.kill()  # no clean-up runs: the template sees its socket close, the kernels die with it
    finish(process, timeout=60)
    time.sleep(1)
    assert left_over(pids) == []


def test_switched_off_the_run_starts_cold_and_says_so_once(tmp_path):
    pipeline = project(tmp_path, {"one": 0, "two": 0})
    process = labline_run(pipeline, env={SWITCH: "0"})
    code, err = finish(process)
    assert code == 0, err
    pids = recorded_pids(pipeline, ["one", "two"], timeout=1)
    assert [(ppid, from_template) for _, ppid, from_template in pids.values()] == [(process.pid, False)] * 2
    assert err.count("kernels start cold") == 1, err
    assert left_over(pids) == []
