"""Run a notebook that may misbehave, under a time limit, and always come back.

A student's notebook may loop forever, kill its kernel or never answer an interrupt. The
client below gives each cell at most `cell_timeout` seconds and never more than what is left
of `total_timeout`; a watchdog thread kills the kernel's process group if the whole run
overstays the limit by a grace period (a kernel stuck in C code ignores everything else).
The kernel is shut down immediately afterwards, whatever happened, so none is left behind.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

DEFAULT_CELL_TIMEOUT = 60.0
DEFAULT_TOTAL_TIMEOUT = 300.0
WATCHDOG_GRACE = 5.0


@dataclass
class Execution:
    """What happened: `completed` (every cell ran, errors allowed), `timeout` or `dead_kernel`."""

    notebook: NotebookNode
    status: str
    message: str
    stopped_at: int | None  # index of the cell that was running when execution stopped
    seconds: float

    @property
    def finished(self) -> bool:
        return self.status == "completed"


def cell_error(cell: NotebookNode) -> dict | None:
    """The error output of an executed code cell (ename, evalue, traceback), or None."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return {"ename": output.get("ename", ""), "evalue": output.get("evalue", ""),
                    "traceback": output.get("traceback", [])}
    return None


class DeadlineClient(NotebookClient):
    """NotebookClient whose cell timeouts never run past one overall deadline."""

    def __init__(self, nb: NotebookNode, cell_timeout: float, total_timeout: float, **kwargs):
        super().__init__(nb, timeout_func=self._cell_timeout, shutdown_kernel="immediate", **kwargs)
        self.cell_limit = float(cell_timeout)
        self.deadline = time.monotonic() + float(total_timeout)
        self.current_cell: int | None = None
        self.kernel_pid: int | None = None
        self.on_cell_start = self._note_cell

    def _note_cell(self, cell: NotebookNode, cell_index: int) -> None:
        self.current_cell = cell_index
        provisioner = getattr(self.km, "provisioner", None)
        if self.kernel_pid is None and getattr(provisioner, "pid", None):
            self.kernel_pid = provisioner.pid

    def _cell_timeout(self, cell: NotebookNode) -> int:
        remaining = self.deadline - time.monotonic()
        # nbclient treats 0 as "no limit", so a spent budget still gets one second, not forever.
        return max(1, int(min(self.cell_limit, remaining) + 0.999))

    def kernel_alive(self) -> bool:
        """Whether the kernel this client started is still running (and is still our child)."""
        if not self.kernel_pid or not psutil.pid_exists(self.kernel_pid):
            return False
        try:
            process = psutil.Process(self.kernel_pid)
            return process.ppid() == os.getpid() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def kill_kernel_now(self) -> None:
        """Kill the kernel and its children from any thread (the watchdog's last resort).

        The kernel was started in a session of its own, so its process group is its pid.
        """
        if not self.kernel_alive():
            return
        try:
            os.killpg(self.kernel_pid, signal.SIGKILL)
        except OSError:
            try:
                os.kill(self.kernel_pid, signal.SIGKILL)
            except OSError:
                return
        for _ in range(50):  # reap it, so not even a zombie is left
            try:
                if os.waitpid(self.kernel_pid, os.WNOHANG)[0]:
                    return
            except ChildProcessError:
                return
            time.sleep(0.02)


def _watch(client: DeadlineClient, done: threading.Event) -> None:
    while not done.wait(0.5):
        if time.monotonic() > client.deadline + WATCHDOG_GRACE:
            client.kill_kernel_now()
            return


def run_notebook(
    notebook: NotebookNode,
    cwd: str | Path,
    cell_timeout: float = DEFAULT_CELL_TIMEOUT,
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
    kernel_name: str = "python3",
) -> Execution:
    """Execute every cell of `notebook` (a copy is executed), continuing past cell errors.

    Stops early only when the time limit is reached or the kernel dies. Never raises for
    anything the notebook does.
    """
    client = DeadlineClient(notebook, cell_timeout, total_timeout, allow_errors=True, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(cwd)}}, record_timing=False)
    done = threading.Event()
    watchdog = threading.Thread(target=_watch, args=(client, done), daemon=True)
    started = time.monotonic()
    status, message = "completed", "every cell ran"
    watchdog.start()
    try:
        client.execute(cwd=str(cwd))
    except CellTimeoutError:
        status = "timeout"
        message = f"time limit reached in cell {client.current_cell} (at most {cell_timeout:g} s a cell, " \
                  f"{total_timeout:g} s in all)"
    except DeadKernelError:
        overstayed = time.monotonic() > client.deadline
        status = "timeout" if overstayed else "dead_kernel"
        message = (f"time limit of {total_timeout:g} s reached in cell {client.current_cell}; the kernel was killed"
                   if overstayed else f"the kernel died while running cell {client.current_cell}")
    except Exception as exc:  # a kernel that cannot start, a broken notebook: a report, not a crash
        status, message = "error", f"{type(exc).__name__}: {exc}"
    finally:
        done.set()
        watchdog.join()
        client.kill_kernel_now()  # nbclient's cleanup already ran; make sure no kernel survived it
    return Execution(client.nb, status, message, client.current_cell, round(time.monotonic() - started, 3))
