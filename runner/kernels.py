"""Kernels for the runner: started ahead of time, warmed, and never left behind.

Every notebook runs in its own kernel process, started with an explicit working directory (no
`os.chdir` in the runner, so parallel steps cannot race on it). Kernel start-up (about a second,
plus the imports every notebook makes) is paid off the critical path: the scheduler asks the
pool to `prestart` kernels while earlier steps run, and a step takes a warm one.

Kernels talk over local `ipc` sockets in a private temporary folder (so IPKernelApp has no
reason to warn about unencrypted TCP), write their own stdout/stderr to a log file there (the
user's terminal stays clean; the log's tail is reported when a kernel dies), and start in their
own session (a terminal's Ctrl-C reaches the runner, which then stops them all).

Kernels start warm: the pool's kernel managers select the `labline-warm` provisioner
(`runner/provisioner.py`), which forks each kernel from a template process that already imported
ipykernel and the modules the notebooks import (`preload`); where it cannot, the kernel starts cold.

All kernel I/O happens on one asyncio loop in a background thread (`KernelLoop`); any thread
submits coroutines to it, which is what lets a plain thread pool or a Dask worker drive kernels.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import shutil
import tempfile
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.forkserver import kill_group
from runner.lazy_imports import defer_slow_imports
from runner.owner import claim_folder, remove_orphan_folders
from runner.templates import ForkTicket, Templates

# What every kernel runs before it is handed out: import scrapbook (and with it papermill, nbformat
# and pandas), which every notebook glues with, and the modules the step's notebook imports
# unconditionally; in a forked kernel, only those its template had not imported yet. A module that
# fails to import is left alone: the notebook's own import statement reports the error where it belongs.
WARM_UP = """
for _runner_module in {modules!r}:
    try:
        __import__(_runner_module)
    except Exception:
        pass
del _runner_module
"""
# A cold kernel's crash (SIGSEGV, SIGABRT, ...) writes the cell's Python traceback to its log, as a
# forked kernel's does (`runner/forkserver.py`): by path, since ipykernel has pointed fd 2 at a pipe
# that a dying kernel can no longer forward.
CRASH_LOG = """
import faulthandler as _runner_faulthandler
_runner_faulthandler.enable(file=open({path!r}, "a"), all_threads=False)
del _runner_faulthandler
"""
DEFAULT_PRELOAD = ("scrapbook",)
DEFAULT_KERNEL = "python3"  # for a notebook that declares no kernel at all
_known_kernels: set[str] = set()
STARTUP_TIMEOUT = 120.0  # kernel process up and answering; imports not included
FOLDER_PREFIX = "runner-kernels-"  # a pool's folder in the temp dir: sockets, connection files, logs


@dataclass
class Kernel:
    """A started kernel process with its client channels open."""

    km: Any  # jupyter_client AsyncKernelManager
    kc: Any  # jupyter_client AsyncKernelClient
    key: tuple
    log_path: Path
    pid: int | None
    started: float = field(default_factory=time.time)
    forked: bool = False  # from a template (warm), or started cold

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


Key = tuple[str, str, tuple[str, ...]]  # kernel name, working directory, modules to preload


def declared_kernel(nb: dict[str, Any]) -> str:
    """The kernel a notebook declares in its metadata (`python3` when it declares none)."""
    return ((nb.get("metadata") or {}).get("kernelspec") or {}).get("name") or DEFAULT_KERNEL


def require_kernel(name: str) -> None:
    """Raise KernelMissing, naming the kernel and the fix, when no kernelspec `name` is installed."""
    if name in _known_kernels:
        return
    from jupyter_client.kernelspec import KernelSpecManager

    from runner.errors import KernelMissing

    installed = KernelSpecManager().find_kernel_specs()
    if name not in installed:
        raise KernelMissing(
            f"the notebook declares the kernel {name!r}, which is not installed here "
            f"(installed: {', '.join(sorted(installed)) or 'none'}); run `make install` to "
            f"register the project's kernel, or open the notebook and pick an installed one"
        )
    _known_kernels.update(installed)


class KernelPool:
    """Kernels by (kernel name, working directory, preloaded modules); lives on the KernelLoop's
    event loop."""

    def __init__(self, preload: tuple[str, ...] = DEFAULT_PRELOAD):
        self.preload_modules = tuple(preload)
        remove_orphan_folders(f"{FOLDER_PREFIX}*", Path(tempfile.gettempdir()))
        self._folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))  # private: connection files hold keys
        claim_folder(self._folder)
        self._ids = itertools.count(1)
        self._spare: dict[Key, list[tuple[asyncio.Task, ForkTicket]]] = {}  # started ahead, with their place in line
        self._live: dict[int, Kernel] = {}  # id(kernel) -> kernel, every kernel not yet stopped
        self._pids: set[int] = set()  # for the synchronous last-resort kill
        self._asked: dict[str, list[str]] = {}  # kernel name -> modules its template should import
        self.templates = Templates(self._folder)

    def preload(self, kernel_name: str, modules) -> None:
        """Start the template of `kernel_name` now, if none runs, and have it import `modules` (in order,
        after those asked before), ahead of the kernels that will need them. Advisory: never raises."""
        from runner.provisioner import start_template

        try:
            start_template(self.templates, kernel_name, self._ask(kernel_name, modules))
        except Exception:
            pass  # the kernel's own start reports what is wrong

    def _ask(self, kernel_name: str, modules) -> list[str]:
        asked = self._asked.setdefault(kernel_name, list(self.preload_modules))
        asked.extend(m for m in modules if m not in asked)
        return asked

    async def _start(self, key: Key, inherit_output: bool = False, ticket: ForkTicket | None = None) -> Kernel:
        """Start a kernel for `key`; its stdout/stderr go to a log file, or to ours with `inherit_output`;
        a spare's `ticket` queues its fork behind those of kernels steps wait for."""
        from jupyter_client.manager import AsyncKernelManager

        from runner.provisioner import selection

        kernel_name, cwd, modules = key
        number = next(self._ids)
        prefix = self._folder / f"k{number}"
        km = AsyncKernelManager(
            kernel_name=kernel_name, transport="ipc", ip=str(prefix), connection_file=str(prefix) + ".json"
        )
        needs = list(dict.fromkeys(self.preload_modules + modules))
        km.kernel_spec.metadata["kernel_provisioner"] = selection(
            self.templates, self._ask(kernel_name, modules), needs, ticket
        )
        log_path = Path(str(prefix) + ".log")
        with open(log_path, "wb") as log:  # the child keeps its own descriptor
            output = {} if inherit_output else {"stdout": log, "stderr": log}
            await km.start_kernel(cwd=cwd, extra_arguments=["--HistoryManager.hist_file=:memory:"], **output)
        provisioner = km.provisioner
        if provisioner.pid:
            self._pids.add(provisioner.pid)
        kc = km.client()
        kernel = Kernel(km, kc, key, log_path, provisioner.pid, forked=getattr(provisioner, "forked", None) is not None)
        self._live[id(kernel)] = kernel
        try:
            kc.start_channels()
            await kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
            # Sent, not awaited: a spare kernel imports while it waits for its step, and a step
            # that gets a kernel still importing simply has its first cell queue behind that.
            kc.execute(WARM_UP.format(modules=needs), silent=True, store_history=False)
            if not kernel.forked and not inherit_output:
                kc.execute(CRASH_LOG.format(path=str(log_path)), silent=True, store_history=False)
        except BaseException:
            await self.stop(kernel)
            raise
        return kernel

    def prestart(self, kernel_name: str, cwd: str, modules: tuple[str, ...], count: int) -> None:
        """Keep `count` spare kernels starting or started for this key (never stops extra ones)."""
        key = (kernel_name, str(cwd), tuple(modules))
        spares = self._spare.setdefault(key, [])
        while len(spares) < count:
            ticket = ForkTicket(spare=True)
            spares.append((asyncio.ensure_future(self._start(key, ticket=ticket)), ticket))

    async def acquire(
        self, kernel_name: str, cwd: str, modules: tuple[str, ...] = (), inherit_output: bool = False
    ) -> Kernel:
        """A ready kernel: a spare one when there is one, else a new one. With `inherit_output` the
        kernel writes to this process's stdout/stderr (a notebook run from the shell), never a spare."""
        key = (kernel_name, str(cwd), tuple(modules))
        if inherit_output:
            return await self._start(key, inherit_output=True)
        spares = self._spare.get(key) or []
        while spares:
            task, ticket = spares.pop(0)
            ticket.hurry()
            try:
                kernel = await task
            except Exception:
                continue  # a spare that failed to start: start a fresh one below, which reports why
            if await kernel.km.is_alive():
                return kernel
            await self.stop(kernel)
        return await self._start(key)

    async def stop(self, kernel: Kernel) -> None:
        """Stop a kernel now (steps never reuse one) and remove its files."""
        self._live.pop(id(kernel), None)
        try:
            kernel.kc.stop_channels()
        except Exception:
            pass
        try:
            await kernel.km.shutdown_kernel(now=True)
        except Exception:
            pass
        try:
            await kernel.km.cleanup_resources()
        except Exception:
            pass
        if kernel.pid:
            kill_group(kernel.pid)
            self._pids.discard(kernel.pid)

    async def stop_all(self) -> None:
        for spares in self._spare.values():
            for task, _ in spares:
                task.cancel()
                try:
                    kernel = await task
                except BaseException:
                    continue
                await self.stop(kernel)
        self._spare.clear()
        for kernel in list(self._live.values()):
            await self.stop(kernel)
        await self.templates.stop()

    def kill_now(self) -> None:
        """Synchronous, from any thread: kill every kernel process group this pool started."""
        for pid in list(self._pids):
            kill_group(pid)
        self._pids.clear()
        self.templates.kill_now()

    def remove_folder(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)


class KernelLoop:
    """One background event loop per process, owning the process's KernelPool."""

    _instance: KernelLoop | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        defer_slow_imports()
        import jupyter_client.manager  # noqa: F401  (before the loop's thread and step threads race to import it)

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="runner-kernels", daemon=True)
        self.thread.start()
        self.pool = KernelPool()
        atexit.register(self.close)

    @classmethod
    def get(cls) -> KernelLoop:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @classmethod
    def running(cls) -> KernelLoop | None:
        return cls._instance

    def run(self, coroutine: Coroutine, timeout: float | None = None) -> Any:
        """Run a coroutine on the loop from any other thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def call(self, fn, *args) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def close(self) -> None:
        """Stop every kernel; called at exit, and on interruption before that."""
        self.pool.kill_now()
        if self.loop.is_running():
            try:
                self.run(self.pool.stop_all(), timeout=10)
            except Exception:
                pass
        self.pool.remove_folder()
