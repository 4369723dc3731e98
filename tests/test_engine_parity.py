"""labline's papermill engine against papermill's default engine, both through the `papermill`
command: for each papermill option, the same notebook gives the same output notebook (times
removed), the same files and the same log lines (times, paths and ids normalized).

Each test runs the two engines once, side by side, each in a folder of its own with the same
relative paths. What may differ, and is normalized here: times; the kernel's own log records
(papermill's kernel talks TCP and warns about it, the runner's kernels use ipc sockets; a kernel
being shut down logs a ZMQ error or not, by timing); traceback frames (the engines' call stacks
differ, the exceptions do not); the kernel id in nbclient's start-failure line (the pool's kernel
has none until it answers); how many `tick` lines a cell printed before it was stopped, and where
in the cell the interrupt landed (the traceback's frames between its header and its last line).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from tests.fixtures import FIXTURES

PARITY = FIXTURES / "parity"
PAPERMILL = str(Path(sys.executable).parent / "papermill")
ENGINES = ("default", "labline")
FD_LINES = ("fd1-direct", "fd2-direct")  # what cells write straight to file descriptors 1 and 2
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception|Interrupt)\b")
# The kernel's own log records: ipykernel's, and Python's default format (the papermill process logs
# "%(message)s" only), e.g. tornado's "Uncaught exception in ZMQStream callback" as a kernel shuts down.
SHUTDOWN_INTERRUPT = "KeyboardInterrupt caught in kernel."  # a kernel's one-line record, no traceback
KERNEL_RECORD = re.compile(r"^(\[IPKernelApp\] |(DEBUG|INFO|WARNING|ERROR|CRITICAL):[\w.]+:)")
TICK = re.compile(r"^tick \d+\n$")
SLOW_KERNEL = (  # one line: the runner names the command in the notice that this kernel starts cold
    "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(6); "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from ipykernel import kernelapp; kernelapp.launch_new_instance()  # parity-slow-kernel"
)
# The runner's notice that a kernel starts cold (no fork template for its command): the warm
# kernel's own fallback, said once; the default engine has no warm kernels to fall back from.
COLD_NOTICE = re.compile(r"^\S+:\d+: ColdKernelWarning: ")


@dataclass
class Run:
    """One `papermill` command: its folder (input, output and files), exit code, stdout and stderr."""

    folder: Path
    returncode: int
    stdout: str
    stderr: str

    def notebook_text(self) -> str:
        return (self.folder / "out.ipynb").read_text(encoding="utf-8")

    def notebook(self, drop_ticks: bool = False) -> dict:
        return comparable(json.loads(self.notebook_text()), drop_ticks)

    def log_lines(self) -> list[str]:
        return log_lines(self.stderr, self.folder)


def run_both(
    tmp_path: Path,
    notebook: str,
    args: list[str],
    during: Callable[[subprocess.Popen, Path], None] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 240,
) -> dict[str, Run]:
    """`papermill in.ipynb out.ipynb ARGS` under each engine at once; `during(process, folder)`
    runs beside each while it executes."""
    runs: dict[str, Run] = {}
    errors: list[BaseException] = []

    def one(engine: str) -> None:
        try:
            runs[engine] = run_one(engine)
        except BaseException as error:
            errors.append(error)

    def run_one(engine: str) -> Run:
        folder = tmp_path / engine
        folder.mkdir()
        shutil.copy(PARITY / notebook, folder / "in.ipynb")
        command = [PAPERMILL, "in.ipynb", "out.ipynb", *args] + (["--engine", "labline"] if engine == "labline" else [])
        with open(folder / "stdout.log", "w") as out, open(folder / "stderr.log", "w") as err:
            process = subprocess.Popen(command, cwd=folder, stdout=out, stderr=err, env={**os.environ, **(env or {})})
            try:
                if during:
                    during(process, folder)
                process.wait(timeout)
            finally:
                process.kill()
        return Run(folder, process.returncode, (folder / "stdout.log").read_text(), (folder / "stderr.log").read_text())

    threads = [threading.Thread(target=one, args=(engine,)) for engine in ENGINES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return runs


def comparable(nb: dict, drop_ticks: bool = False) -> dict:
    """The notebook with times replaced by whether they are set; `tick` lines dropped if asked."""
    papermill = nb["metadata"]["papermill"]
    for key in ("start_time", "end_time", "duration"):
        papermill[key] = papermill[key] is not None
    for cell in nb["cells"]:
        if {"papermill-error-cell-tag", "injected-parameters"} & set(cell["metadata"].get("tags", [])):
            cell["id"] = "<random>"  # cells papermill adds get new ids on every run
        cell["metadata"].pop("execution", None)  # nbclient's message times
        record = cell["metadata"].get("papermill", {})
        for key in ("start_time", "end_time", "duration"):
            record[key] = record.get(key) is not None
        if drop_ticks and "outputs" in cell:
            cell["outputs"] = [o for o in cell["outputs"] if not TICK.match("".join(o.get("text", "")))]
            for output in cell["outputs"]:
                if output.get("ename") == "KeyboardInterrupt":  # where it lands (which line, which frames) is timing
                    output["traceback"] = output["traceback"][:1] + output["traceback"][-1:]
    return nb


def log_lines(text: str, folder: Path) -> list[str]:
    """papermill's log lines in order: the kernel's own log records, traceback frames and the
    lines cells wrote to fds 1 and 2 (they interleave with the log by timing) left out."""
    lines, in_kernel_record = [], False
    for line in text.replace(str(folder), "<dir>").splitlines():
        if KERNEL_RECORD.match(line):
            # an error record: its traceback follows, but for the one-line notice of an interrupt at shutdown
            in_kernel_record = "ERROR" in line.split("|")[0] and not line.endswith(SHUTDOWN_INTERRUPT)
            continue
        if in_kernel_record:
            if line.startswith((" ", "Traceback")):
                continue
            in_kernel_record = False
            if EXCEPTION_LINE.match(line):
                continue
        if line.startswith(" ") or line in FD_LINES or COLD_NOTICE.match(line):
            continue
        line = re.sub(r"for kernel \S+:", "for kernel <id>:", UUID.sub("<uuid>", line))
        lines.append(line)
    return lines


def assert_same(runs: dict[str, Run], drop_ticks: bool = False) -> None:
    default, labline = runs["default"], runs["labline"]
    assert labline.returncode == default.returncode, labline.stderr[-3000:]
    assert labline.log_lines() == default.log_lines()
    assert labline.stdout == default.stdout  # cells' writes to fd 1, from the kernel itself
    for fd_line in FD_LINES:
        assert labline.stderr.count(fd_line) == default.stderr.count(fd_line)
    assert labline.notebook(drop_ticks) == default.notebook(drop_ticks)
    for run in (default, labline):  # saved as nbformat writes: split sources, sorted keys, indent 1
        text = run.notebook_text()
        assert text == nbformat.writes(nbformat.reads(text, as_version=4)), run.folder


def executed_parameters(nb: dict) -> dict:
    """The values the injected cell's literals evaluate to (built-ins cut off)."""
    cell = next(c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    values: dict = {}
    exec("".join(cell["source"]), {"__builtins__": {"float": float}}, values)
    return values


EVIL = 'it\'s "quoted", a \\ backslash,\na new line and é; import os #'


def test_success_parameters_log_output_and_stdout_stderr_files(tmp_path):
    args = ["--log-output", "--stdout-file", "cells.out", "--stderr-file", "cells.err"]
    args += [
        "-p",
        "s",
        EVIL,
        "-p",
        "i",
        "3",
        "-p",
        "f",
        "2.5",
        "-p",
        "b",
        "True",
        "-p",
        "n",
        "None",
        "-p",
        "inf",
        "inf",
    ]
    args += ["-y", "items: [1, two, 3.5, null, true]\nd: {k: v, nested: [1, {x: false}]}"]
    runs = run_both(tmp_path, "outputs.ipynb", args)
    assert runs["default"].returncode == 0, runs["default"].stderr[-3000:]
    assert_same(runs)
    for name in ("cells.out", "cells.err"):
        assert (runs["labline"].folder / name).read_text() == (runs["default"].folder / name).read_text()
    labline = runs["labline"]
    assert "rfc3987_syntax real or absent: True\n" in (labline.folder / "cells.out").read_text()
    assert "to stderr\n" in (labline.folder / "cells.err").read_text()
    lines = labline.log_lines()
    assert "Executing notebook with kernel: labline" in lines
    assert "Executing Cell 3" + "-" * 39 in lines  # --log-output: cells and their output
    assert "{'rows': 3, 'text': 'shown'}" in lines
    assert labline.stdout.count("fd1-direct") == 1 and labline.stderr.count("fd2-direct") >= 1  # fds reach us
    nb = labline.notebook()
    assert executed_parameters(nb) == {
        "s": EVIL,
        "i": 3,
        "f": 2.5,
        "b": True,
        "n": None,
        "inf": float("inf"),
        "items": [1, "two", 3.5, None, True],
        "d": {"k": "v", "nested": [1, {"x": False}]},
    }
    outputs = {c["id"]: "".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", [])}
    assert outputs["outputs-7"] == "rfc3987_syntax real or absent: True\n"  # no stand-in module in the kernel
    assert nb["metadata"]["language_info"]["name"] == "python"


def test_failing_cell(tmp_path):
    runs = run_both(tmp_path, "fails.ipynb", ["--no-progress-bar"])
    assert runs["default"].returncode == 1
    assert_same(runs)
    lines = runs["labline"].log_lines()
    assert "ValueError: boom: the input is wrong" in lines
    cells = runs["labline"].notebook()["cells"]
    assert cells[0]["metadata"]["tags"] == ["papermill-error-cell-tag"]
    assert [c["metadata"]["papermill"]["status"] for c in cells if c["cell_type"] == "code"] == [
        "completed",
        "failed",
        "pending",  # papermill's record of the cell after the failure, never run
    ]


def test_execution_timeout_on_a_sleeping_cell(tmp_path):
    runs = run_both(tmp_path, "ticks.ipynb", ["--no-progress-bar", "--execution-timeout", "3"])
    assert runs["default"].returncode == 1
    assert_same(runs, drop_ticks=True)
    assert "Timeout waiting for execute reply (3s)." in runs["labline"].log_lines()
    sleeper = cell(runs["labline"].notebook(), "ticks-2")
    assert sleeper["metadata"]["papermill"]["status"] == "completed"  # papermill's record after a timeout
    assert [o.get("ename") for o in sleeper["outputs"] if o["output_type"] == "error"] == ["KeyboardInterrupt"]
    assert sum(bool(TICK.match("".join(o.get("text", "")))) for o in sleeper["outputs"]) >= 3
    assert "language_info" not in runs["labline"].notebook()["metadata"]


def cell(nb: dict, cell_id: str) -> dict:
    return next(c for c in nb["cells"] if c["id"] == cell_id)


def written_cell(folder: Path, cell_id: str) -> dict | None:
    """The cell as the output notebook on disk holds it now (None while the file is half written)."""
    try:
        return cell(json.loads((folder / "out.ipynb").read_text(encoding="utf-8")), cell_id)
    except (OSError, ValueError, StopIteration):
        return None


def wait_for_running(folder: Path, cell_id: str, seconds: float = 180) -> None:
    end = time.time() + seconds
    while time.time() < end:
        written = written_cell(folder, cell_id)
        if written and written["metadata"]["papermill"]["status"] == "running":
            return
        time.sleep(0.1)
    raise AssertionError(f"cell {cell_id} never ran in {folder}")


def test_ctrl_c_mid_cell(tmp_path):
    def interrupt(process: subprocess.Popen, folder: Path) -> None:
        wait_for_running(folder, "ticks-2")
        time.sleep(2.5)
        process.send_signal(signal.SIGINT)

    runs = run_both(tmp_path, "ticks.ipynb", ["--no-progress-bar"], during=interrupt)
    assert runs["default"].returncode == 1
    assert_same(runs, drop_ticks=True)
    assert runs["labline"].log_lines()[-1] == "Aborted!"
    nb = runs["labline"].notebook()
    sleeper = cell(nb, "ticks-2")
    assert [o.get("ename") for o in sleeper["outputs"] if o["output_type"] == "error"] == ["KeyboardInterrupt"]
    assert cell(nb, "ticks-3")["metadata"]["papermill"]["start_time"] is False  # never started
    assert nb["metadata"]["papermill"]["end_time"] is True and "language_info" not in nb["metadata"]


def test_autosave_mid_cell(tmp_path):
    seen: dict[Path, list[int]] = {}

    def watch(process: subprocess.Popen, folder: Path) -> None:
        """How many ticks the file on disk held while the cell was still running."""
        seen[folder] = []
        wait_for_running(folder, "ticks-2")
        while process.poll() is None:
            written = written_cell(folder, "ticks-2")  # None: papermill's default engine writes in place
            if written and written["metadata"]["papermill"]["status"] == "running":
                seen[folder].append(len(written["outputs"]))
            time.sleep(0.1)

    runs = run_both(
        tmp_path, "ticks.ipynb", ["--no-progress-bar", "--autosave-cell-every", "1", "-p", "count", "10"], watch
    )
    assert runs["default"].returncode == 0
    assert_same(runs)
    for engine, run in runs.items():
        mid_cell = [n for n in seen[run.folder] if 0 < n < 10]
        assert len(set(mid_cell)) >= 2, (engine, seen[run.folder])  # saved more than once while it ran


def _kernel_processes(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_start_timeout_reaches_the_kernel_start(tmp_path):
    spec = tmp_path / "jupyter" / "kernels" / "slowpy"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-c", SLOW_KERNEL, "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "slow", "language": "python"}))
    env = {"JUPYTER_PATH": str(tmp_path / "jupyter")}
    runs = run_both(tmp_path, "fails.ipynb", ["--no-progress-bar", "-k", "slowpy", "--start-timeout", "2"], env=env)
    assert runs["default"].returncode == 1
    assert_same(runs)
    lines = runs["labline"].log_lines()
    assert (
        "Error occurred while starting new kernel client for kernel <id>: Kernel didn't respond in 2 seconds" in lines
    )
    assert lines[-1] == "RuntimeError: Kernel didn't respond in 2 seconds"
    time.sleep(1)
    assert _kernel_processes("parity-slow-kernel") == []  # both engines stopped the kernel they started
