"""A throwaway PostgreSQL server for the registry tests: `initdb` into a temporary folder, `pg_ctl`
starts it listening on a unix socket in that folder only (no TCP port to collide with), and it is
stopped and removed at the end of the session.

PostgreSQL refuses to run as root, so as root the server runs as an unprivileged user (`postgres`
when the package created it, else `nobody`) that owns the folder. Where no server binaries are
found or the server does not start, the PostgreSQL variants skip, and the reason says which."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SUPERUSER = "labline"
START_TIMEOUT_S = 60


def server_binaries() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`: on PATH, else Debian's /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    candidates = [Path(found).parent] if found else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    return next((c for c in candidates if (c / "initdb").exists() and (c / "pg_ctl").exists()), None)


def _server_user() -> pwd.struct_passwd | None:
    """Who the server runs as: this process, or an unprivileged account when this process is root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' account exists to run the server")


class PostgresServer:
    """One server in its own folder; `new_database()` gives each test an empty database's URL."""

    def __init__(self, binaries: Path):
        self.binaries = binaries
        self.user = _server_user()
        self.folder = Path(tempfile.mkdtemp(prefix="labline-pg-"))  # short: a socket path has ~100 bytes
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self._numbers = itertools.count(1)
        try:
            if self.user is not None:
                os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)
            self._as_server_user([binaries / "initdb", "-D", self.data, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8"])
            options = f"-c listen_addresses='' -c unix_socket_directories='{self.folder}' -c fsync=off"
            self._as_server_user([binaries / "pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "start"])
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def _as_server_user(self, command: list) -> None:
        ids = {} if self.user is None else {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        done = subprocess.run(
            [str(c) for c in command], cwd=self.folder, capture_output=True, text=True, timeout=START_TIMEOUT_S, **ids
        )
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{Path(command[0]).name} failed ({done.returncode}): {done.stderr or done.stdout}{log}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.folder}"

    def new_database(self) -> str:
        """The URL of a new, empty database (a fresh one per test keeps tests independent)."""
        import sqlalchemy as sa

        name = f"registry_{next(self._numbers)}"
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        try:
            self._as_server_user([self.binaries / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """A running PostgreSQL server for the session, or a skip that says why there is none."""
    try:
        import psycopg  # noqa: F401  (the driver of `postgresql+psycopg://` URLs: pip install labline[postgres])
    except ImportError:
        pytest.skip("psycopg is not installed (pip install labline[postgres])")
    binaries = server_binaries()
    if binaries is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin")
    try:
        server = PostgresServer(binaries)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"a PostgreSQL server could not be started: {exc}")
    yield server
    server.stop()
