"""labline's papermill engine: papermill's execution manager, cells run on the runner's kernels.

Registered as `labline` through papermill's `papermill.engine` entry point, so both of these
run a notebook the same way:

    papermill.execute_notebook("in.ipynb", "out.ipynb", engine_name="labline", km=..., kc=...)
    papermill in.ipynb out.ipynb --engine labline -p epochs 5

What it adds to papermill's default (nbclient) engine: it runs in a kernel started ahead of time
(`km`/`kc`, or one it starts itself from `runner.kernels`); a whole-notebook limit
(`notebook_timeout`) on top of the per-cell one (`execution_timeout`); a callback after every
code cell (`on_cell(done, total)`); and every kernel message goes through the runner's one event
loop, so Ctrl-C or a dead kernel (found within about a second, by nbclient's poll) ends a step
at once. papermill's metadata (notebook and per-cell start, end, duration, status, exception)
is written by papermill's own `NotebookExecutionManager`.

`LablineTranslator` writes the injected-parameters cell for notebooks on the project's kernel:
every value is a Python literal built from plain data (`runner.notebook.python_literal`).

Nothing here imports papermill at import time: papermill loads this module through its entry
point while papermill itself is still importing, and a user may import this module first.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import time
from collections.abc import Callable
from typing import Any

from runner.notebook import imported_modules, injected_source, python_literal, write_atomic

PROJECT_KERNEL = "labline"
CellProgress = Callable[[int, int], None]  # (code cells done, code cells in all)


class NotebookTimeout(Exception):
    """The whole notebook ran past its limit."""


class LablineTranslator:
    """papermill's Python translator, with labline's literals (tuples and non-string keys kept)."""

    @classmethod
    def translate(cls, val: Any) -> str:
        return python_literal(val)

    @classmethod
    def codify(cls, parameters: dict[str, Any], comment: str = "Parameters") -> str:
        return injected_source(parameters)

    @classmethod
    def inspect(cls, parameters_cell: Any) -> list:
        from papermill.translators import PythonTranslator

        return PythonTranslator.inspect(parameters_cell)


def use_translator(kernel_name: str = PROJECT_KERNEL) -> None:
    """Make papermill write parameters for `kernel_name` with labline's translator."""
    from papermill.translators import papermill_translators

    papermill_translators.register(kernel_name, LablineTranslator)


@functools.cache
def execution_manager() -> type:
    """papermill's NotebookExecutionManager, saving atomically as plain JSON: it saves before and after
    every cell, and nbformat's schema validation on each save would cost more than a short cell
    (papermill validates the notebook when it reads it and when it writes the final one)."""
    from papermill.engines import NotebookExecutionManager

    class LablineExecutionManager(NotebookExecutionManager):
        def save(self, **kwargs):
            if kwargs.get("nb"):
                self.nb = kwargs["nb"]
            if self.output_path:
                write_atomic(self.nb, self.output_path)
            self.last_save_time = self.now()

    return LablineExecutionManager


class LablineEngine:
    """A papermill engine (the methods of papermill's `Engine` that papermill calls)."""

    @classmethod
    def nb_kernel_name(cls, nb, name=None):
        """papermill asks this before it writes the parameters: the moment to register the translator."""
        from papermill.utils import nb_kernel_name

        use_translator()
        return nb_kernel_name(nb, name)

    @classmethod
    def nb_language(cls, nb, language=None):
        from papermill.utils import nb_language

        return nb_language(nb, language)

    @classmethod
    def execute_notebook(
        cls, nb, kernel_name, output_path=None, progress_bar=True, log_output=False, autosave_cell_every=30, **kwargs
    ):
        """papermill's `Engine.execute_notebook`, with labline's execution manager."""
        nb_man = execution_manager()(
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
        km=None,
        kc=None,
        execution_timeout=None,
        notebook_timeout=None,
        on_cell: CellProgress | None = None,
        allow_errors=False,
        **kwargs,
    ):
        from runner.kernels import KernelLoop

        loop = KernelLoop.get()
        future = asyncio.run_coroutine_threadsafe(
            _run(nb_man, kernel_name, km, kc, execution_timeout, notebook_timeout, on_cell, allow_errors), loop.loop
        )
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise


async def _run(nb_man, kernel_name, km, kc, cell_timeout, notebook_timeout, on_cell, allow_errors):
    """Run every cell on the kernel loop; start (and stop) a kernel of our own when none is given."""
    from runner.kernels import KernelLoop

    pool = KernelLoop.get().pool
    kernel = None
    if km is None:
        kernel = await pool.acquire(kernel_name, os.getcwd(), tuple(imported_modules(nb_man.nb)))
        km, kc = kernel.km, kernel.kc
    try:
        await _execute_cells(nb_man, kernel_name, km, kc, cell_timeout, notebook_timeout, on_cell, allow_errors)
    finally:
        if kernel is not None:
            await asyncio.shield(pool.stop(kernel))
    return nb_man.nb


async def _execute_cells(nb_man, kernel_name, km, kc, cell_timeout, notebook_timeout, on_cell, allow_errors):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nb_man.nb
    client = NotebookClient(
        nb,
        km=km,
        kernel_name=kernel_name,
        allow_errors=allow_errors,
        resources={"metadata": {"path": os.getcwd()}},
        record_timing=True,
    )
    client.kc = kc or km.client()
    reply = await client.async_wait_for_reply(await _maybe_await(client.kc.kernel_info()))
    if reply and "language_info" in reply["content"]:
        nb.metadata["language_info"] = reply["content"]["language_info"]
    total = sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip())
    deadline = time.time() + notebook_timeout if notebook_timeout else None
    done = 0
    for index, cell in enumerate(nb.cells):
        nb_man.cell_start(cell, index)
        try:
            client.timeout = _cell_budget(cell_timeout, deadline)
            await client.async_execute_cell(cell, index)
        except CellExecutionError:
            nb_man.cell_exception(cell, cell_index=index)
            break
        except CellTimeoutError as exc:
            nb_man.cell_exception(cell, cell_index=index)
            if deadline and time.time() >= deadline - 1:
                raise NotebookTimeout(f"the notebook ran past its timeout of {notebook_timeout:g} s") from exc
            raise
        except BaseException:
            nb_man.cell_exception(cell, cell_index=index)
            raise
        finally:
            nb_man.cell_complete(cell, cell_index=index)
        if cell.cell_type == "code" and cell.source.strip():
            done += 1
            if on_cell:
                on_cell(done, total)


async def _maybe_await(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future) else value


def _cell_budget(cell_timeout: float | None, deadline: float | None) -> int | None:
    """nbclient's per-cell timeout (whole seconds): the cell's own, cut to what the notebook has left."""
    budgets = [cell_timeout] if cell_timeout else []
    if deadline:
        budgets.append(max(deadline - time.time(), 0.001))
    return max(1, math.ceil(min(budgets))) if budgets else None
