"""The log's writer: group commit on the event loop, large batches in a writer thread, and
checkpoints in a thread of their own.

Requests hand their scorings to the log and wait; the scorings of every request that reached
this point in the same turn of the event loop are written in one transaction (group commit),
then those requests are answered. Under load many requests share one commit, so durability
costs one write per group of requests rather than one per request. A large batch is committed
in a writer thread at once, so the answer can be encoded while SQLite writes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from labline.serve.request_log.rows import ANSWER_COLUMNS, Scoring
from labline.serve.request_log.schema import connect, db_path

_INSERT_ANSWERS = (
    f"INSERT INTO answers (scoring, {', '.join(ANSWER_COLUMNS)}) VALUES ({', '.join('?' * (len(ANSWER_COLUMNS) + 1))})"
)
_INSERT_RECORDS = "INSERT INTO answers (id, payload, prediction, probabilities) VALUES (?, ?, ?, ?)"
_INSERT_SCORING = (
    "INSERT INTO scorings (score_batch, time, model_version, artifact_sha256, arm, batch_id, "
    "client_key, latency_ms, first_answer, records) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (score_batch) DO NOTHING RETURNING id"
)
_SCORING_ID = "SELECT id FROM scorings WHERE score_batch = ?"
_NEXT_ANSWER_ID = "SELECT coalesce(max(id), 0) + 1 FROM answers"
_INSERT_DEPLOYMENT = "INSERT OR REPLACE INTO deployments VALUES (?, ?, ?, ?, ?, ?, ?)"
THREAD_COMMIT_ROWS = 256  # a write this large goes to the writer thread at once, not to the group
CHECKPOINT_ROWS = 20_000  # rows between two background checkpoints: about the 4 MiB SQLite would wait for


class RequestLog:
    """The log's writer: `await log.append(scorings)` returns once they are committed.

    Small appends made during one turn of the event loop are committed in one transaction at
    the end of that turn. With synchronous=NORMAL (or OFF) such a commit costs tens of
    microseconds (no fsync), so it runs right there on the event loop, which is cheaper than
    handing rows to another thread; with FULL or EXTRA the fsync runs in the writer thread while
    the loop keeps serving. An append of THREAD_COMMIT_ROWS records or more starts in the writer
    thread at once: `append` returns a future, so the caller can encode its answer meanwhile.
    Writes from threads (shadow scoring, deployments) use `submit`, which commits in the calling
    thread. A lock serialises the one connection.
    """

    def __init__(self, url_or_path: str | Path, synchronous: str = "NORMAL", commit_window_ms: float = 0.0):
        self.path = db_path(url_or_path)
        self._conn = connect(self.path, synchronous)
        self._lock = threading.Lock()
        self._inline = synchronous.upper() in ("OFF", "NORMAL")
        self._window = commit_window_ms / 1000.0
        self._pending: list = []
        self._scheduled = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="labline-request-log")
        # Checkpoints (copying the write-ahead log into the database file, with its fsyncs) run
        # in a thread of their own, off the commits that answers wait for.
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="labline-request-log-checkpoint")
        self._unchecked_rows = 0
        self._checkpoint_queued = False
        self.closed = False
        self.commits = 0  # how many transactions; rows / commits is the grouping achieved
        self.rows = 0

    def append(self, scorings: list[Scoring]) -> asyncio.Future:
        """Queue scorings; the returned future resolves once they are committed (or fails with why)."""
        if self.closed:
            raise RuntimeError("the request log is closed")
        loop = asyncio.get_running_loop()
        if sum(len(s) for s in scorings) >= THREAD_COMMIT_ROWS:
            return loop.run_in_executor(self._executor, self.submit, scorings)
        done = loop.create_future()
        self._pending.append((scorings, done))
        if not self._scheduled:
            self._scheduled = True
            if self._window:
                loop.call_later(self._window, self._flush)
            else:
                loop.call_soon(self._flush)
        return done

    def _flush(self) -> None:
        batch, self._pending, self._scheduled = self._pending, [], False
        scorings = [s for group, _ in batch for s in group]
        if self._inline:
            _settle_all(batch, self._commit(scorings))
        else:
            loop = asyncio.get_running_loop()
            task = loop.run_in_executor(self._executor, self._commit, scorings)
            task.add_done_callback(lambda t: _settle_all(batch, t.result()))

    def submit(self, scorings: list[Scoring]) -> None:
        """Commit from a thread without an event loop (shadow scoring); errors are raised."""
        error = self._commit(scorings)
        if error is not None:
            raise error

    def record_deployment(self, arm: str, deployment) -> None:
        """Remember which artifact this service loaded, from where, with what lineage (replay reads it)."""
        row = (
            deployment.sha256,
            deployment.version,
            deployment.ref,
            arm,
            str(deployment.model.path),
            deployment.deployed_at,
            json.dumps(deployment.lineage, default=str),
        )
        self._commit([], [row], raise_errors=True)

    def _commit(self, scorings: list[Scoring], deployments=(), raise_errors: bool = False) -> Exception | None:
        """One transaction; a failure is returned (or raised), so the requests waiting on it fail too."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                _write(conn, scorings)
                if deployments:
                    conn.executemany(_INSERT_DEPLOYMENT, deployments)
                conn.execute("COMMIT")
            except Exception as exc:  # a failed commit fails the requests waiting on it, never silently
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if raise_errors:
                    raise
                return exc
            self._committed(sum(len(s) for s in scorings) + len(deployments))
        return None

    def _committed(self, written: int) -> None:
        """Count a commit's rows and queue a checkpoint once enough have piled up (holding the lock)."""
        self.commits += 1
        self.rows += written
        self._unchecked_rows += written
        if self._unchecked_rows >= CHECKPOINT_ROWS and not self._checkpoint_queued and not self.closed:
            self._checkpoint_queued, self._unchecked_rows = True, 0
            self._checkpointer.submit(self._checkpoint)

    def _checkpoint(self, mode: str = "PASSIVE") -> None:
        """Move committed pages into the database file; PASSIVE never waits for readers or writers."""
        try:
            conn = sqlite3.connect(self.path, timeout=30)
            try:
                conn.execute(f"PRAGMA wal_checkpoint({mode})")
            finally:
                conn.close()
        except sqlite3.Error:  # the next checkpoint will catch up; commits never depend on it
            pass
        finally:
            self._checkpoint_queued = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._executor.shutdown(wait=True)
            self._checkpointer.shutdown(wait=True)
            self._checkpoint()
            with self._lock:
                self._conn.close()


def _write(conn: sqlite3.Connection, scorings: list[Scoring]) -> None:
    """Insert the scorings' rows inside the caller's transaction: one scorings row per model
    call (shared by micro-batched requests), a batch's records as one id range."""
    answers: list[tuple] = []
    ids: dict[str, int] = {}
    for s in scorings:
        count = len(s.records[0])
        # the batch's rows get the next ids, stated explicitly so the range holds
        first = conn.execute(_NEXT_ANSWER_ID).fetchone()[0] if count else None
        scoring_id = ids.get(s.score_batch)
        if scoring_id is None:
            scoring_id = ids[s.score_batch] = _scoring_id(conn, s, first, count)
        if count:  # four values per record: the rest is the scoring's
            conn.executemany(_INSERT_RECORDS, zip(itertools.count(first), *s.records))
        answers.extend((scoring_id, *a) for a in s.answers)
    conn.executemany(_INSERT_ANSWERS, answers)


def _scoring_id(conn: sqlite3.Connection, s: Scoring, first: int | None, count: int) -> int:
    """The scorings row of this model call: inserted now, or written by an earlier commit."""
    values = (
        s.score_batch,
        s.time,
        s.model_version,
        s.artifact_sha256,
        s.arm,
        s.batch_id,
        s.client_key,
        s.latency_ms,
        first,
        count or None,
    )
    row = conn.execute(_INSERT_SCORING, values).fetchone()
    if row is None:  # an earlier commit wrote this model call already
        row = conn.execute(_SCORING_ID, (s.score_batch,)).fetchone()
    return row[0]


def _settle_all(batch: list, error: Exception | None) -> None:
    for _, future in batch:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
