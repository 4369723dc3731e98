"""`labline serve --workers N`: N uvicorn worker processes behind one listening socket.

uvicorn spawns fresh interpreters that build the app by name (`app_from_env` below) from the
settings in LABLINE_SERVE_SETTINGS. All workers write to the same request log (SQLite WAL, one
writer per process). Their Prometheus metrics go to files in a private temporary folder named
by PROMETHEUS_MULTIPROC_DIR (see `labline.serve.metrics`), so `/metrics` from any worker reports
the totals of all workers; the folder is removed when the server stops.

This module is imported by the parent before it starts the workers, so it stays light: the
models, FastAPI and prometheus_client are imported only inside the workers.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
import traceback
from pathlib import Path

from labline.serve.settings import SETTINGS_ENV, ServeSettings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # the same name as labline.serve.metrics.MULTIPROC_ENV
# Left in the metrics folder by a worker that could not build the app (prometheus_client only
# reads the folder's *.db files).
STARTUP_FAILURE_FILE = "startup-failure.txt"


def app_from_env():
    """Factory each worker runs. A worker that cannot build the app (a model that does not load,
    a log it cannot open) leaves the reason for the parent and exits with uvicorn's
    STARTUP_FAILURE code, which stops the server; any other exit code makes uvicorn start a
    replacement, which would fail the same way, forever."""
    from uvicorn.config import STARTUP_FAILURE

    try:
        from labline.serve.app import app_from_env as build

        return build()
    except Exception as exc:  # noqa: BLE001 - whatever it is, a replacement would fail the same way
        if _is_deployment_error(exc):  # its message names what is wrong; a traceback adds nothing
            reason = str(exc)
            print(f"labline serve: worker {os.getpid()}: {reason}", file=sys.stderr)
        else:
            reason = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        folder = os.environ.get(MULTIPROC_ENV)
        if folder and os.path.isdir(folder):
            (Path(folder) / STARTUP_FAILURE_FILE).write_text(reason)
        sys.exit(STARTUP_FAILURE)


def _is_deployment_error(exc: Exception) -> bool:
    from labline.serve.deployments import DeploymentError

    return isinstance(exc, DeploymentError)


def serve_workers(settings: ServeSettings, host: str, port: int, workers: int) -> str | None:
    """Serve until SIGINT or SIGTERM; returns None, or why the workers could not start."""
    import uvicorn

    if workers < 2:
        raise ValueError(f"serve_workers needs at least 2 workers, got {workers}")
    main_thread = threading.current_thread() is threading.main_thread()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    if main_thread:
        # Until uvicorn installs its own handlers, SIGTERM unwinds through `finally` (the
        # default action would end the process and leave the metrics folder behind).
        signal.signal(signal.SIGTERM, _exit_on_signal)
    saved = {name: os.environ.get(name) for name in (SETTINGS_ENV, MULTIPROC_ENV)}
    # A fresh folder each run (mode 0700): one reused across runs would add the old counts.
    folder = Path(tempfile.mkdtemp(prefix="labline-metrics-"))
    try:
        # Set before the workers start: prometheus_client picks file-backed values at import.
        os.environ[MULTIPROC_ENV] = str(folder)
        os.environ[SETTINGS_ENV] = settings.to_json()
        uvicorn.run(
            "labline.serve.workers:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
        )
        failure = folder / STARTUP_FAILURE_FILE
        return failure.read_text() if failure.exists() else None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _exit_on_signal(signum, frame) -> None:
    raise SystemExit(128 + signum)
