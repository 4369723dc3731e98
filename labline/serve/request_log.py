"""The request log: one SQLite row per answered request, committed before the answer is sent.

Requests hand their rows to the log and wait; the rows of every request that reached this
point in the same turn of the event loop are written in one transaction (group commit), then
those requests are answered. Under load many requests share one commit, so durability costs
one write per group of requests rather than one per request.

The database is in WAL mode. With `synchronous=NORMAL` (the default) a commit is in the
operating system's hands before the answer leaves, so killing the server (even SIGKILL) loses
nothing that was answered; a power cut may lose the last commits. `synchronous=FULL` also
fsyncs every commit, which survives power loss at a cost of one fsync per group.

Tables (documented in docs/serving.md): `requests`, `deployments`, `feedback`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    time TEXT NOT NULL,
    client_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    prediction TEXT,
    probabilities TEXT,
    model_version INTEGER,
    artifact_sha256 TEXT NOT NULL,
    arm TEXT NOT NULL,
    latency_ms REAL,
    shadow INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    batch_id TEXT,
    score_batch TEXT,
    score_index INTEGER,
    UNIQUE (request_id, shadow)
);
CREATE INDEX IF NOT EXISTS requests_time ON requests (time);
CREATE INDEX IF NOT EXISTS requests_score_batch ON requests (score_batch);
CREATE TABLE IF NOT EXISTS deployments (
    artifact_sha256 TEXT NOT NULL,
    model_version INTEGER,
    ref TEXT NOT NULL,
    arm TEXT NOT NULL,
    artifact_path TEXT NOT NULL,
    deployed_at TEXT NOT NULL,
    lineage TEXT NOT NULL,
    PRIMARY KEY (artifact_sha256, deployed_at, arm)
);
CREATE TABLE IF NOT EXISTS feedback (
    request_id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    time TEXT NOT NULL
);
"""

COLUMNS = ("request_id", "time", "client_key", "payload", "prediction", "probabilities", "model_version",
           "artifact_sha256", "arm", "latency_ms", "shadow", "error", "batch_id", "score_batch", "score_index")
INSERT = f"INSERT OR REPLACE INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
JSON_COLUMNS = ("payload", "prediction", "probabilities")


def db_path(url_or_path: str | Path) -> Path:
    """Accept a path or a `sqlite:///path` URL."""
    text = str(url_or_path)
    if text.startswith("sqlite:///"):
        return Path(text[len("sqlite:///"):])
    if "://" in text:
        raise ValueError(f"the request log is a SQLite file; got {text!r}, expected a path or sqlite:///path")
    return Path(text)


def connect(url_or_path: str | Path, synchronous: str = "NORMAL") -> sqlite3.Connection:
    path = db_path(url_or_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.executescript(SCHEMA)
    return conn


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))  # built once: json.dumps with
# options builds a new encoder per call, which dominated batch logging


def dumps(value: Any) -> str:
    """JSON with Python's shortest round-trip float repr: probabilities read back bit for bit."""
    return _ENCODER.encode(value)


class RequestLog:
    """The log's writer: `await log.append(rows)` returns once the rows are committed.

    Rows appended during one turn of the event loop are committed in one transaction at the
    end of that turn. With synchronous=NORMAL (or OFF) a commit costs tens of microseconds
    (no fsync), so it runs right there on the event loop, which is cheaper than handing rows to
    another thread; with FULL or EXTRA the fsync runs in a writer thread while the loop keeps
    serving. Rows from threads (shadow scoring, deployments) use `submit`, which commits in the
    calling thread. A lock serialises the one connection.

    Each row is a tuple in COLUMNS order; payload, prediction and probabilities are JSON text.
    """

    def __init__(self, url_or_path: str | Path, synchronous: str = "NORMAL", commit_window_ms: float = 0.0):
        self.path = db_path(url_or_path)
        self._conn = connect(self.path, synchronous)
        self._lock = threading.Lock()
        self._inline = synchronous.upper() in ("OFF", "NORMAL")
        self._window = commit_window_ms / 1000.0
        self._pending: list = []
        self._scheduled = False
        self._executor = None if self._inline else ThreadPoolExecutor(1, thread_name_prefix="labline-request-log")
        self.closed = False
        self.commits = 0  # how many transactions; rows / commits is the grouping achieved
        self.rows = 0

    async def append(self, rows: list[tuple]) -> None:
        """Queue rows and wait until their transaction has committed (raises if it failed)."""
        if self.closed:
            raise RuntimeError("the request log is closed")
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._pending.append((rows, done))
        if not self._scheduled:
            self._scheduled = True
            if self._window:
                loop.call_later(self._window, self._flush)
            else:
                loop.call_soon(self._flush)
        await done

    def _flush(self) -> None:
        batch, self._pending, self._scheduled = self._pending, [], False
        rows = [row for group, _ in batch for row in group]
        if self._executor is None:
            _settle_all(batch, self._commit(rows))
        else:
            loop = asyncio.get_running_loop()
            task = loop.run_in_executor(self._executor, self._commit, rows)
            task.add_done_callback(lambda t: _settle_all(batch, t.result()))

    def submit(self, rows: list[tuple]) -> None:
        """Commit rows from a thread without an event loop (shadow scoring); errors are raised."""
        error = self._commit(rows)
        if error is not None:
            raise error

    def record_deployment(self, arm: str, deployment) -> None:
        row = (deployment.sha256, deployment.version, deployment.ref, arm, str(deployment.model.path),
               deployment.deployed_at, json.dumps(deployment.lineage, default=str))
        self.submit([("deployment", row)])

    def _commit(self, rows: list) -> Exception | None:
        requests = [r for r in rows if r[0] != "deployment"]
        deployments = [r[1] for r in rows if r[0] == "deployment"]
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                if requests:
                    self._conn.executemany(INSERT, requests)
                if deployments:
                    self._conn.executemany("INSERT OR REPLACE INTO deployments VALUES (?, ?, ?, ?, ?, ?, ?)",
                                           deployments)
                self._conn.execute("COMMIT")
            except Exception as exc:  # a failed commit fails the requests waiting on it, never silently
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                return exc
            self.commits += 1
            self.rows += len(requests)
        return None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            with self._lock:
                self._conn.close()


def _settle_all(batch: list, error: Exception | None) -> None:
    for _, future in batch:
        _settle(future, error)


def _settle(future: asyncio.Future, error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


# Reading ----------------------------------------------------------------------------------

def _since_text(since: Any) -> str | None:
    if since is None:
        return None
    if isinstance(since, str):
        since = datetime.fromisoformat(since)
    if since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    return since.astimezone(timezone.utc).isoformat(timespec="microseconds")


def read_requests(db_url_or_path: str | Path, since: Any = None, version: int | None = None,
                  include_shadow: bool = False, limit: int | None = None) -> pd.DataFrame:
    """One row per answered request, oldest first.

    Columns: request_id, time (UTC datetime), client_key, payload (dict of the raw record),
    prediction, probabilities (dict label -> float, None for regression), model_version (None
    when served from a folder), artifact_sha256, arm, latency_ms, shadow (bool), error,
    batch_id, score_batch, score_index. Shadow answers are left out unless `include_shadow`.
    """
    path = db_path(db_url_or_path)
    if not path.exists():
        raise FileNotFoundError(f"no request log at {path}")
    where, params = [], []
    if not include_shadow:
        where.append("shadow = 0")
    if since is not None:
        where.append("time >= ?")
        params.append(_since_text(since))
    if version is not None:
        where.append("model_version = ?")
        params.append(int(version))
    sql = f"SELECT {', '.join(COLUMNS)} FROM requests"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    conn = sqlite3.connect(path, timeout=30)
    try:
        frame = pd.DataFrame(conn.execute(sql, params).fetchall(), columns=list(COLUMNS))
    finally:
        conn.close()
    return _decode(frame)


def _decode(frame: pd.DataFrame) -> pd.DataFrame:
    for column in JSON_COLUMNS:
        frame[column] = [json.loads(v) if isinstance(v, (str, bytes)) else None for v in frame[column]]
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601")
    frame["shadow"] = frame["shadow"].astype(bool)
    frame["model_version"] = frame["model_version"].astype("Int64")
    return frame


def expand_payloads(requests: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """The payloads as a feature frame (one column per field), indexed like `requests`.

    Example: `expand_payloads(read_requests(path))[spec.features]` is the production input
    that drift monitoring compares with the training data.
    """
    features = pd.DataFrame(list(requests["payload"]), index=requests.index)
    return features if columns is None else features.reindex(columns=columns)


def query(db_url_or_path: str | Path, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    """Run a read query on the log (used by replay, feedback and the A/B report)."""
    path = db_path(db_url_or_path)
    if not path.exists():
        raise FileNotFoundError(f"no request log at {path}")
    conn = sqlite3.connect(path, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def request_rows(db_url_or_path: str | Path, where: str, params: tuple = ()) -> pd.DataFrame:
    """Rows of `requests` (shadow included) matching a WHERE clause, decoded like read_requests."""
    rows = query(db_url_or_path, f"SELECT {', '.join(COLUMNS)} FROM requests WHERE {where} ORDER BY id", params)
    return _decode(pd.DataFrame([tuple(r) for r in rows], columns=list(COLUMNS)))


def write_feedback(db_url_or_path: str | Path, labels: dict[str, str]) -> tuple[int, list[str]]:
    """Store ground-truth labels by request id; returns (stored, unknown request ids)."""
    conn = connect(db_url_or_path)
    try:
        known = set()
        ids = list(labels)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            known.update(r[0] for r in conn.execute(
                f"SELECT request_id FROM requests WHERE shadow = 0 AND request_id IN ({marks})", chunk))
        now = utc_now()
        rows = [(rid, str(labels[rid]), now) for rid in ids if rid in known]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT OR REPLACE INTO feedback VALUES (?, ?, ?)", rows)
        conn.execute("COMMIT")
        return len(rows), [rid for rid in ids if rid not in known]
    finally:
        conn.close()
