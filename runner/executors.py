"""Where steps execute: this machine, or a Dask cluster; both behind `concurrent.futures`.

- `local`: a thread pool in the runner's process. Each thread drives one kernel process (the
  notebook runs there, with its own working directory), so a step costs no extra Python
  interpreter and no re-import of papermill/nbformat; kernels are started ahead of time.
- `dask`: a Dask `LocalCluster` of `workers` single-threaded worker processes.
- `dask://HOST:PORT`: an existing Dask scheduler; run folders must be on a path every worker
  sees, and every worker needs this project installed.

The scheduler in `runner.pipeline` only calls `submit` and waits on the futures, whichever it is.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from runner.errors import UsageError


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass
class StepExecutor:
    """A `concurrent.futures.Executor` and what the scheduler needs to know about it."""

    executor: Executor
    kind: str
    workers: int
    remote: bool  # steps run in other processes: no live cell progress, no kernel prestart
    _closers: list[Any] = field(default_factory=list)

    def close(self, wait: bool = True) -> None:
        try:
            self.executor.shutdown(wait=wait, cancel_futures=True)
        except TypeError:  # Dask's ClientExecutor.shutdown takes only `wait`
            self.executor.shutdown(wait=wait)
        for closer in self._closers:
            try:
                closer()
            except Exception:
                pass

    def __enter__(self) -> StepExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close(wait=exc[0] is None)


def make_executor(kind: str = "local", workers: int | None = None) -> StepExecutor:
    """`local`, `dask` (a LocalCluster of `workers` processes) or `dask://HOST:PORT`."""
    workers = workers or default_workers()
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if kind == "local":
        return StepExecutor(
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runner-step"), "local", workers, remote=False
        )
    if kind == "dask" or kind.startswith("dask://") or kind.startswith("tcp://"):
        return _dask_executor(kind, workers)
    raise UsageError(f"unknown executor {kind!r}; expected 'local', 'dask' or 'dask://HOST:PORT'")


def _dask_executor(kind: str, workers: int) -> StepExecutor:
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - dask is a declared dependency
        raise UsageError(f"--executor {kind} needs dask[distributed]: {exc}") from exc
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)
    if kind == "dask":
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
        )
        client = Client(cluster)
        closers = [client.close, cluster.close]
    else:
        address = "tcp://" + kind.split("://", 1)[1]
        try:
            client = Client(address, timeout=10)
        except OSError as exc:
            raise UsageError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        workers = max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))
        closers = [client.close]
    return StepExecutor(client.get_executor(pure=False), kind, workers, remote=True, _closers=closers)
