"""Where steps execute: in this process, or in a pool of worker processes.

Both are `concurrent.futures.Executor`s, so the scheduler drives them the same way. Each step in
a pool runs in its own process, which matters because papermill changes the working directory
of the process that calls it.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor


class InlineExecutor(Executor):
    """Runs each call at submit time, in this process: no start-up cost for one worker."""

    def submit(self, fn, /, *args, **kwargs):
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered to whoever waits on the future
            future.set_exception(exc)
        return future


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def make_executor(kind: str = "local", workers: int | None = None) -> Executor:
    """`local` with 1 worker runs inline; with more, a process pool of that size."""
    workers = workers or default_workers()
    if kind != "local":
        raise ValueError(f"unknown executor {kind!r}; expected 'local'")
    if workers == 1:
        return InlineExecutor()
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
