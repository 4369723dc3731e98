"""labline's papermill engine: papermill's own engine and notebook client, on a warm kernel.

Registered as `labline` through papermill's `papermill.engine` entry point, so both of these
run a notebook the same way:

    papermill.execute_notebook("in.ipynb", "out.ipynb", engine_name="labline", km=..., kc=...)
    papermill in.ipynb out.ipynb --engine labline -p epochs 5

`LablineEngine` is papermill's `NBClientEngine` and `LablineNotebookClient` its
`PapermillNotebookClient`: papermill's options reach them as they reach papermill's own
(`log_output`, `stdout_file`/`stderr_file`, `autosave_cell_every`, `start_timeout`,
`execution_timeout`), and the notebook is executed, recorded and saved in papermill's order, so
the output notebook after a success, a failing cell, a timeout or Ctrl-C is papermill's. The one
difference is the kernel: one started ahead of time (`km`/`kc`), or else one the engine takes from
the runner's kernel pool (`runner.kernels`), working in the current directory and writing to this
process's stdout/stderr as the kernel papermill starts does. The client's steps run as coroutines
on the runner's one event loop (`KernelLoop`), since kernels are driven from many threads.

Under the `papermill` command, the parameters given (`-p`, `-r`, `-f`, `-y`) are checked as
`labline run` checks them (`runner.params`), before any kernel starts: an unknown name or a value
that does not fit the declared type is a click usage error, which papermill's command prints and
exits 2 with; the values that fit are injected converted (`-p sizes [8]` gives the list [8]).
Called from Python (`papermill.execute_notebook`), the caller checks (the runner does, in its plan).

labline's additions: a whole-notebook limit (`notebook_timeout`) beside papermill's per-cell
`execution_timeout`, a callback after each code cell (`on_cell(done, total)`), and saves that
write papermill's bytes atomically without nbformat's schema validation on each save. A kernel
that dies is found within about a second (nbclient's poll).

The injected-parameters cell for the project's kernel is written by `runner.translator`.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any


def __getattr__(name: str) -> Any:
    """papermill registers its engines while it imports itself, this one through its entry point.
    When this module is imported first, papermill asks for `LablineEngine` before the class below
    exists: it gets papermill's engine for that moment, and `LablineEngine` is registered again at
    the end of this module."""
    import sys

    if name == "LablineEngine" and "papermill.engines" in sys.modules:
        return sys.modules["papermill.engines"].NBClientEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


import papermill  # noqa: E402, F401  (first: papermill imports this module while it imports itself)
from jupyter_core.utils import ensure_async  # noqa: E402
from nbclient.exceptions import CellExecutionError, CellTimeoutError  # noqa: E402
from nbclient.util import run_hook  # noqa: E402
from papermill.clientwrap import PapermillNotebookClient  # noqa: E402
from papermill.engines import (  # noqa: E402
    NBClientEngine,
    NotebookExecutionManager,
    catch_nb_assignment,
    papermill_engines,
)
from papermill.iorw import LocalHandler, papermill_io  # noqa: E402
from papermill.log import logger  # noqa: E402
from papermill.translators import translate_parameters  # noqa: E402
from papermill.utils import merge_kwargs, remove_args  # noqa: E402

from runner.errors import ParameterError  # noqa: E402
from runner.notebook import imported_modules, notebook_text, write_atomic  # noqa: E402
from runner.params import bind_parameters, declared_in  # noqa: E402

CellProgress = Callable[[int, int], None]  # (code cells done, code cells in all)


class NotebookTimeout(Exception):
    """The whole notebook ran past its limit."""


class _Interrupted(Exception):
    """Ctrl-C reached the thread waiting for the notebook: the running cell is left as papermill leaves it."""


def save_notebook(nb: Any, path: str) -> None:
    """What papermill's `write_ipynb` writes (nbformat's JSON text), without nbformat's schema
    validation, and to a local file atomically (a reader never sees half a notebook)."""
    text = notebook_text(nb)
    handler = papermill_io.get_handler(path, extensions=[".ipynb", ".json"])
    if isinstance(handler, LocalHandler):
        # papermill's local paths are relative to the directory papermill started in (before --cwd)
        full = os.path.join(handler._cwd or "", path)
        if os.path.isdir(os.path.dirname(full) or "."):
            write_atomic(text, full)
            return
    handler.write(text, path)  # a remote path, or papermill's own error for a missing folder


def check_command_parameters(nb: Any, input_path: str | None, kernel_name: str) -> None:
    """Under the `papermill` command: refuse parameters `labline run` would refuse (click's usage error,
    exit 2), and inject the ones given converted to their declared types."""
    import click

    context = click.get_current_context(silent=True)
    given = dict(nb.metadata.get("papermill", {}).get("parameters") or {})
    if context is None or context.command.name != "papermill" or not given:
        return
    notebook = input_path or "the notebook"
    try:
        converted = bind_parameters(notebook, given, declared_in(nb, notebook))
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from None
    if converted != given:
        cell = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
        language = nb.metadata.get("kernelspec", {}).get("language") or "python"
        cell.source = translate_parameters(kernel_name, language, converted, "Parameters")
        nb.metadata.papermill["parameters"] = converted


class LablineExecutionManager(NotebookExecutionManager):
    """papermill's execution manager; it saves before and after every cell and while a cell writes
    output, and schema validation on each save would cost more than a short cell (papermill still
    validates the notebook when it reads it and when it writes the final one)."""

    @catch_nb_assignment
    def save(self, **kwargs):
        if self.output_path:
            save_notebook(self.nb, self.output_path)
        self.last_save_time = self.now()


def _runs(cell: Any) -> bool:
    """Whether nbclient executes the cell (a code cell with code in it)."""
    return cell.cell_type == "code" and bool(cell.source.strip())


class LablineNotebookClient(PapermillNotebookClient):
    """papermill's notebook client whose `execute` awaits nbclient's coroutines on the runner's event
    loop, with the kernel given (`km`/`kc`) or a warm one from the runner's pool."""

    def __init__(self, nb_man, km=None, kc=None, notebook_timeout=None, on_cell: CellProgress | None = None, **kw):
        super().__init__(nb_man, km=km, **kw)
        self.kc = kc
        self.notebook_timeout = notebook_timeout
        self.on_cell = on_cell
        self._deadline: float | None = None
        self._interrupted = asyncio.Event()
        self._tasks: set[asyncio.Future] = set()  # this client's tasks that may outlive their cell

    def execute(self):
        """papermill's `execute`, run on the kernel loop. Ctrl-C in this thread ends the running cell
        as it ends papermill's: recorded and saved, the kernel stopped if the engine started it."""
        from runner.kernels import KernelLoop

        loop = KernelLoop.get().loop
        future = asyncio.run_coroutine_threadsafe(self.async_execute_papermill(), loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            loop.call_soon_threadsafe(self._interrupted.set)
            try:
                future.result()
            except _Interrupted:
                pass
            except KeyboardInterrupt:  # a second Ctrl-C: stop waiting for the clean-up
                future.cancel()
            raise

    async def async_execute_papermill(self):
        """`PapermillNotebookClient.execute`, step by step."""
        self.reset_execution_trackers()
        async with self.async_papermill_kernel():
            self.log.info(f"Executing notebook with kernel: {self.kernel_name}")
            await self.async_papermill_execute_cells()
            msg_id = await ensure_async(self.kc.kernel_info())
            info_msg = await self._unless_interrupted(self.async_wait_for_reply(msg_id))
            self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
            self.set_widgets_metadata()
        return self.nb

    async def async_papermill_execute_cells(self):
        """`PapermillNotebookClient.papermill_execute_cells`, plus the whole-notebook limit and `on_cell`."""
        total, done = sum(1 for cell in self.nb.cells if _runs(cell)), 0
        self._deadline = time.monotonic() + self.notebook_timeout if self.notebook_timeout else None
        for index, cell in enumerate(self.nb.cells):
            try:
                self.nb_man.cell_start(cell, index)
                await self._unless_interrupted(self.async_execute_cell(cell, index))
            except CellExecutionError as ex:
                self.nb_man.cell_exception(self.nb.cells[index], cell_index=index, exception=ex)
                break
            except CellTimeoutError as ex:
                if self._deadline is not None and time.monotonic() >= self._deadline - 1:
                    raise NotebookTimeout(f"the notebook ran past its timeout of {self.notebook_timeout:g} s") from ex
                raise
            finally:
                self.nb_man.cell_complete(self.nb.cells[index], cell_index=index)
            if self.on_cell and _runs(cell):
                done += 1
                self.on_cell(done, total)

    @asynccontextmanager
    async def async_papermill_kernel(self):
        """nbclient's `setup_kernel` as papermill runs it; the kernel it would start comes from the pool."""
        kernel = None
        if self.km is None:
            kernel = await self._unless_interrupted(self._async_acquire_kernel(), cancel=True)
            self.km, self.kc = kernel.km, kernel.kc
        elif not self.km.has_kernel:
            await self.async_start_new_kernel()
        if self.kc is None:
            await self.async_start_new_kernel_client()
        else:  # what async_start_new_kernel_client does once the kernel answers
            self.kc.allow_stdin = False
            await run_hook(self.on_notebook_start, notebook=self.nb)
        try:
            yield
        finally:
            if kernel is not None:
                from runner.kernels import KernelLoop

                try:
                    await self._async_cleanup_kernel()  # papermill's stop of its own kernel: interrupt, shut down
                finally:
                    await KernelLoop.get().pool.stop(kernel)
            for task in list(self._tasks):  # papermill's event loop stops here: nothing more reaches the notebook
                task.cancel()

    async def _async_acquire_kernel(self):
        """A warm kernel from the runner's pool for this notebook, in the current directory, writing to
        this process's stdout/stderr, ready within `startup_timeout` (papermill's --start-timeout; the
        imports the pool's kernel makes for the notebook count as its start-up)."""
        try:
            return await asyncio.wait_for(self._async_ready_kernel(), self.startup_timeout)
        except Exception as error:
            if isinstance(error, asyncio.TimeoutError):  # in jupyter_client's words, as nbclient reports it
                error = RuntimeError(f"Kernel didn't respond in {int(self.startup_timeout)} seconds")
            self.log.error(f"Error occurred while starting new kernel client for kernel {self.kernel_name}: {error}")
            raise error from None

    async def _async_ready_kernel(self):
        from runner.kernels import KernelLoop

        pool = KernelLoop.get().pool
        modules = tuple(imported_modules(self.nb))
        kernel = await pool.acquire(self.kernel_name, os.getcwd(), modules, inherit_output=True)
        try:  # a kernel answers requests in order: its reply comes once the warm-up imports are done
            msg_id = kernel.kc.kernel_info()
            while (await kernel.kc.get_shell_msg())["parent_header"].get("msg_id") != msg_id:
                pass
        except BaseException:
            await pool.stop(kernel)
            raise
        return kernel

    async def _unless_interrupted(self, awaitable, cancel: bool = False):
        """Await `awaitable`, or raise _Interrupted on Ctrl-C, leaving it running (as papermill's stopped
        event loop leaves a cell's tasks: a kernel the engine stops still sends the cell its
        KeyboardInterrupt) unless `cancel`."""
        task = self._track(asyncio.ensure_future(awaitable))
        stop = asyncio.ensure_future(self._interrupted.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if task.done():
            return task.result()
        if cancel:
            task.cancel()
        raise _Interrupted()

    def _track(self, task: asyncio.Future) -> asyncio.Future:
        """Keep a task to cancel when the notebook ends; its exception is retrieved (no asyncio warning)."""
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Future) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()

    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
        self._track(asyncio.current_task())
        return await super()._async_poll_output_msg(parent_msg_id, cell, cell_index)

    async def _async_poll_kernel_alive(self):
        self._track(asyncio.current_task())
        return await super()._async_poll_kernel_alive()

    def _get_timeout(self, cell):
        """nbclient's per-cell timeout, cut to what is left of the whole-notebook limit."""
        timeout = super()._get_timeout(cell)
        if cell is None or self._deadline is None:
            return timeout
        left = max(1, math.ceil(self._deadline - time.monotonic()))
        return left if timeout is None else min(timeout, left)


class LablineEngine(NBClientEngine):
    """papermill's nbclient engine with labline's execution manager and notebook client."""

    @classmethod
    def nb_kernel_name(cls, nb, name=None):
        """papermill asks this before it writes the parameters: the moment to register the translator."""
        from runner.translator import use_translator

        use_translator()
        return super().nb_kernel_name(nb, name)

    @classmethod
    def execute_notebook(
        cls, nb, kernel_name, output_path=None, progress_bar=True, log_output=False, autosave_cell_every=30, **kwargs
    ):
        """papermill's `Engine.execute_notebook`, which names its execution manager's class; the
        `papermill` command's parameters are checked first."""
        check_command_parameters(nb, kwargs.get("input_path"), kernel_name)
        nb_man = LablineExecutionManager(
            nb,
            output_path=output_path,
            progress_bar=progress_bar,
            log_output=log_output,
            autosave_cell_every=autosave_cell_every,
        )
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
        return nb_man.nb

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man,
        kernel_name,
        log_output=False,
        stdout_file=None,
        stderr_file=None,
        start_timeout=60,
        execution_timeout=None,
        **kwargs,
    ):
        """`NBClientEngine.execute_managed_notebook`, which names its client's class; labline's
        `km`, `kc`, `notebook_timeout` and `on_cell` pass through `kwargs`."""
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=logger,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        return LablineNotebookClient(nb_man, **final_kwargs).execute()


papermill_engines.register("labline", LablineEngine)  # see __getattr__ above
