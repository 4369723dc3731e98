"""The request log: one SQLite row per answered record, committed before the answer is sent.

Layout (schema version 2, documented in docs/serving.md): a `scorings` row per model call
holds what every record of that call shares (time, model version, artifact hash, arm, batch),
an `answers` row per record holds what is its own (payload, prediction, probabilities, and for
a request answered on its own its id, client key and latency), and the `requests` view joins
them back into one row per answered request, the shape every reader uses. Writing a call's
shared facts once keeps a 10,000-record batch's log write to the bytes that differ per record.

Requests hand their scorings to the log and wait; the scorings of every request that reached
this point in the same turn of the event loop are written in one transaction (group commit),
then those requests are answered. Under load many requests share one commit, so durability
costs one write per group of requests rather than one per request. A large batch is committed
in a writer thread at once, so the answer can be encoded while SQLite writes.

The database is in WAL mode. With `synchronous=NORMAL` (the default) a commit is in the
operating system's hands before the answer leaves, so killing the server (even SIGKILL) loses
nothing that was answered; a power cut may lose the last commits. `synchronous=FULL` also
fsyncs every commit, which survives power loss at a cost of one fsync per group.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

SCHEMA_VERSION = 2

# The two halves of the `requests` view, also queried on their own by request id. Requests
# answered one by one (and shadow copies) store their id; a batch record's rows are found from
# its scoring's row range (scorings first, the CROSS JOIN says so: the planner cannot know the
# ranges are short). Batch records are live answers that scored, hence shadow 0 and no error.
_ONE_BY_ONE = """SELECT a.id, a.request_id, s.time, coalesce(a.client_key, a.request_id) AS client_key,
           a.payload, a.prediction, a.probabilities, s.model_version, s.artifact_sha256, s.arm,
           a.latency_ms, a.shadow, a.error, s.batch_id, s.score_batch, a.score_index
    FROM answers AS a JOIN scorings AS s ON s.id = a.scoring
    WHERE a.request_id IS NOT NULL"""
_BATCH_RECORDS = """SELECT a.id, s.batch_id || '-' || (a.id - s.first_answer), s.time,
           coalesce(s.client_key, s.batch_id || '-' || (a.id - s.first_answer)),
           a.payload, a.prediction, a.probabilities, s.model_version, s.artifact_sha256, s.arm,
           s.latency_ms, 0, NULL, s.batch_id, s.score_batch, a.id - s.first_answer
    FROM scorings AS s CROSS JOIN answers AS a ON a.id >= s.first_answer AND a.id < s.first_answer + s.records
    WHERE s.first_answer IS NOT NULL"""

SCHEMA = (
    # One row per model call. `client_key` and `latency_ms` are set when every record of the call
    # shares them (a batch); requests micro-batched together keep their own on their answers.
    # A batch's records are answers rows first_answer .. first_answer + records - 1.
    """CREATE TABLE IF NOT EXISTS scorings (
        id INTEGER PRIMARY KEY,
        score_batch TEXT UNIQUE,
        time TEXT NOT NULL,
        model_version INTEGER,
        artifact_sha256 TEXT NOT NULL,
        arm TEXT NOT NULL,
        batch_id TEXT,
        client_key TEXT,
        latency_ms REAL,
        first_answer INTEGER,
        records INTEGER
    )""",
    "CREATE INDEX IF NOT EXISTS scorings_time ON scorings (time)",
    "CREATE INDEX IF NOT EXISTS scorings_batch ON scorings (batch_id) WHERE batch_id IS NOT NULL",
    # One row per record answered. A batch record stores only what is its own (payload and
    # answer); everything else follows from its place in its scoring's row range: the scoring,
    # its index, its request id `<batch_id>-<index>`, client key and latency. So it adds no
    # index entry either.
    """CREATE TABLE IF NOT EXISTS answers (
        id INTEGER PRIMARY KEY,
        scoring INTEGER REFERENCES scorings (id),
        score_index INTEGER,
        request_id TEXT,
        client_key TEXT,
        payload TEXT NOT NULL,
        prediction TEXT,
        probabilities TEXT,
        latency_ms REAL,
        shadow INTEGER NOT NULL DEFAULT 0,
        error TEXT
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS answers_request ON answers (request_id, shadow) WHERE request_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS answers_scoring ON answers (scoring) WHERE request_id IS NOT NULL",
    # One row per answered request, as every reader sees it.
    f"CREATE VIEW IF NOT EXISTS requests AS {_ONE_BY_ONE} UNION ALL {_BATCH_RECORDS}",
    # Rows inserted in the view's shape (a log being upgraded, a test writing history) land in
    # the two tables: a row joins the scoring with its score_batch, or starts one of its own.
    """CREATE TRIGGER IF NOT EXISTS requests_insert INSTEAD OF INSERT ON requests
    BEGIN
        INSERT INTO scorings (score_batch, time, model_version, artifact_sha256, arm, batch_id)
            SELECT NEW.score_batch, NEW.time, NEW.model_version, NEW.artifact_sha256, NEW.arm, NEW.batch_id
            WHERE NEW.score_batch IS NULL
               OR NOT EXISTS (SELECT 1 FROM scorings WHERE score_batch = NEW.score_batch);
        INSERT INTO answers (scoring, score_index, request_id, client_key, payload, prediction,
                             probabilities, latency_ms, shadow, error)
            VALUES (CASE WHEN NEW.score_batch IS NULL THEN last_insert_rowid()
                         ELSE (SELECT id FROM scorings WHERE score_batch = NEW.score_batch) END,
                    coalesce(NEW.score_index, 0), NEW.request_id, nullif(NEW.client_key, NEW.request_id),
                    NEW.payload, NEW.prediction, NEW.probabilities, NEW.latency_ms, NEW.shadow, NEW.error);
    END""",
    """CREATE TABLE IF NOT EXISTS deployments (
        artifact_sha256 TEXT NOT NULL,
        model_version INTEGER,
        ref TEXT NOT NULL,
        arm TEXT NOT NULL,
        artifact_path TEXT NOT NULL,
        deployed_at TEXT NOT NULL,
        lineage TEXT NOT NULL,
        PRIMARY KEY (artifact_sha256, deployed_at, arm)
    )""",
    """CREATE TABLE IF NOT EXISTS feedback (
        request_id TEXT PRIMARY KEY,
        label TEXT NOT NULL,
        time TEXT NOT NULL
    )""",
)

# The log's shape as the query planner should assume it from the first request on (many answers,
# fewer model calls, a handful of answers per call and per instant), so a time window is read
# through scorings_time rather than by scanning answers. Real statistics replace these once
# `ANALYZE` (or `PRAGMA optimize`) runs on the log.
PLANNER_STATS = (
    ("answers", None, "10000000"), ("answers", "answers_request", "1000000 1 1"),
    ("answers", "answers_scoring", "1000000 10"), ("scorings", None, "100000"),
    ("scorings", "scorings_time", "100000 10"), ("scorings", "scorings_batch", "10000 1"),
    ("scorings", "sqlite_autoindex_scorings_1", "100000 1"),
)

COLUMNS = ("request_id", "time", "client_key", "payload", "prediction", "probabilities", "model_version",
           "artifact_sha256", "arm", "latency_ms", "shadow", "error", "batch_id", "score_batch", "score_index")
INSERT = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
JSON_COLUMNS = ("payload", "prediction", "probabilities")

ANSWER_COLUMNS = ("request_id", "score_index", "client_key", "payload", "prediction", "probabilities",
                  "latency_ms", "shadow", "error")
_INSERT_ANSWERS = (f"INSERT INTO answers (scoring, {', '.join(ANSWER_COLUMNS)}) "
                   f"VALUES ({', '.join('?' * (len(ANSWER_COLUMNS) + 1))})")
_INSERT_RECORDS = "INSERT INTO answers (id, payload, prediction, probabilities) VALUES (?, ?, ?, ?)"
_INSERT_SCORING = ("INSERT INTO scorings (score_batch, time, model_version, artifact_sha256, arm, batch_id, "
                   "client_key, latency_ms, first_answer, records) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT (score_batch) DO NOTHING RETURNING id")
_INSERT_DEPLOYMENT = "INSERT OR REPLACE INTO deployments VALUES (?, ?, ?, ?, ?, ?, ?)"
THREAD_COMMIT_ROWS = 256  # a write this large goes to the writer thread at once, not to the group
CHECKPOINT_ROWS = 20_000  # rows between two background checkpoints: about the 4 MiB SQLite would wait for
_BATCH_REQUEST_ID = re.compile(r"^([0-9a-f]{32})-(\d+)$")


@dataclass
class Scoring:
    """One model call's answers as the log stores them: the call's shared facts once, and per record
    either

    - `answers`: tuples in ANSWER_COLUMNS order, for requests answered one by one and shadow
      copies (payload, prediction and probabilities as JSON text, client_key None when it is
      the request id), or
    - `records`: a batch as three columns (payload, prediction and probabilities texts), in
      record order, so the rows are assembled by `zip` in C rather than one by one; record i's
      request id is `<batch_id>-<i>` and its client key and latency are the scoring's.

    Requests scored together (micro-batching) each append a Scoring with the same `score_batch`;
    the log keeps one scorings row for them.
    """

    score_batch: str
    time: str
    model_version: int | None
    artifact_sha256: str
    arm: str
    answers: list[tuple] = field(default_factory=list)
    records: tuple[list[str], list[str], list[str | None]] = field(default_factory=lambda: ([], [], []))
    batch_id: str | None = None
    client_key: str | None = None
    latency_ms: float | None = None

    @classmethod
    def by(cls, deployment, arm: str, score_batch: str, time: str, **rows) -> "Scoring":
        return cls(score_batch, time, deployment.version, deployment.sha256, arm, **rows)

    def __len__(self) -> int:
        return len(self.answers) + len(self.records[0])


def db_path(url_or_path: str | Path) -> Path:
    """Accept a path or a `sqlite:///path` URL."""
    text = str(url_or_path)
    if text.startswith("sqlite:///"):
        return Path(text[len("sqlite:///"):])
    if "://" in text:
        raise ValueError(f"the request log is a SQLite file; got {text!r}, expected a path or sqlite:///path")
    return Path(text)


def connect(url_or_path: str | Path, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """Open (creating or upgrading) the log; safe when several processes open it at once."""
    path = db_path(url_or_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
        _create_or_upgrade(conn)
    return conn


def _create_or_upgrade(conn: sqlite3.Connection) -> None:
    """Create the tables, or move a version-1 log (one wide `requests` table) into them, in
    one transaction: every logged request keeps its id, payload, answer and model."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:  # another process did it
            conn.execute("COMMIT")
            return
        kind = conn.execute("SELECT type FROM sqlite_master WHERE name = 'requests'").fetchone()
        legacy = kind is not None and kind[0] == "table"
        if legacy:
            conn.execute("ALTER TABLE requests RENAME TO requests_v1")
            conn.execute("DROP INDEX IF EXISTS requests_time")
            conn.execute("DROP INDEX IF EXISTS requests_score_batch")
        for statement in SCHEMA:
            conn.execute(statement)
        conn.execute("ANALYZE sqlite_schema")  # creates sqlite_stat1, which the planner reads
        conn.execute("DELETE FROM sqlite_stat1 WHERE tbl IN ('answers', 'scorings')")
        conn.executemany("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)", PLANNER_STATS)
        if legacy:
            conn.execute(f"INSERT INTO requests ({', '.join(COLUMNS)}) "
                         f"SELECT {', '.join(COLUMNS)} FROM requests_v1 ORDER BY id")
            conn.execute("DROP TABLE requests_v1")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def dumps(value: Any) -> str:
    """Compact JSON with the shortest round-trip float text, so probabilities read back bit for bit.

    orjson's text parses back to the same values as `json.dumps`'s, at a tenth of the cost, which
    matters when a batch logs 10,000 payloads. It writes NaN as null: the service refuses
    non-finite inputs and answers (a 422) before anything reaches the log.
    """
    return orjson.dumps(value, option=_OPTIONS).decode()


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
        row = (deployment.sha256, deployment.version, deployment.ref, arm, str(deployment.model.path),
               deployment.deployed_at, json.dumps(deployment.lineage, default=str))
        self._commit([], [row], raise_errors=True)

    def _commit(self, scorings: list[Scoring], deployments: list[tuple] = (), raise_errors: bool = False) -> Exception | None:
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                answers: list[tuple] = []
                ids: dict[str, int] = {}
                for s in scorings:
                    scoring_id = ids.get(s.score_batch)
                    first = None
                    count = len(s.records[0])
                    if count:  # the batch's rows get the next ids, stated explicitly so the range holds
                        first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM answers").fetchone()[0]
                    if scoring_id is None:
                        row = conn.execute(_INSERT_SCORING, (s.score_batch, s.time, s.model_version, s.artifact_sha256,
                                                             s.arm, s.batch_id, s.client_key, s.latency_ms, first,
                                                             count or None)).fetchone()
                        if row is None:  # an earlier commit wrote this model call already
                            row = conn.execute("SELECT id FROM scorings WHERE score_batch = ?", (s.score_batch,)).fetchone()
                        scoring_id = ids[s.score_batch] = row[0]
                    if count:  # four values per record: the rest is the scoring's
                        conn.executemany(_INSERT_RECORDS, zip(itertools.count(first), *s.records))
                    answers.extend((scoring_id, *a) for a in s.answers)
                conn.executemany(_INSERT_ANSWERS, answers)
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
            self.commits += 1
            written = sum(len(s) for s in scorings) + len(deployments)
            self.rows += written
            self._unchecked_rows += written
            if self._unchecked_rows >= CHECKPOINT_ROWS and not self._checkpoint_queued and not self.closed:
                self._checkpoint_queued, self._unchecked_rows = True, 0
                self._checkpointer.submit(self._checkpoint)
        return None

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


def _settle_all(batch: list, error: Exception | None) -> None:
    for _, future in batch:
        if future.done():
            continue
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


def _chunks(items: list, size: int = 500):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _rows_for(conn: sqlite3.Connection, request_ids: list[str], shadow: bool | None) -> list[tuple]:
    """`requests` rows of these request ids, oldest first, found through the indexes: a stored id
    directly, a batch record's `<batch_id>-<i>` through its batch's scoring (the view computes
    such ids, so a WHERE on the view's request_id would read the whole log)."""
    only = "" if shadow is None else f" AND a.shadow = {int(bool(shadow))}"
    rows: list[tuple] = []
    for chunk in _chunks(request_ids):
        marks = ",".join("?" * len(chunk))
        rows += conn.execute(f"{_ONE_BY_ONE} AND a.request_id IN ({marks}){only}", chunk).fetchall()
    wanted: dict[str, list[int]] = {}
    for request_id in request_ids:
        match = _BATCH_REQUEST_ID.match(request_id)
        if match:
            wanted.setdefault(match.group(1), []).append(int(match.group(2)))
    if not shadow:  # batch records are live answers; their shadow copies store their ids
        for batch_id, indexes in wanted.items():
            for first, count in conn.execute("SELECT first_answer, records FROM scorings "
                                             "WHERE batch_id = ? AND first_answer IS NOT NULL", (batch_id,)):
                ids = [first + index for index in indexes if index < count]
                for chunk in _chunks(ids):
                    marks = ",".join("?" * len(chunk))
                    rows += conn.execute(f"{_BATCH_RECORDS} AND s.batch_id = ? AND a.id IN ({marks})",
                                         (batch_id, *chunk)).fetchall()
    return [row[1:] for row in sorted(rows)]  # sorted by id, which is then dropped


def find_requests(db_url_or_path: str | Path, request_ids: list[str], shadow: bool | None = None) -> pd.DataFrame:
    """The logged rows of these request ids (live and shadow answers, or only one kind), decoded
    like read_requests."""
    path = db_path(db_url_or_path)
    if not path.exists():
        raise FileNotFoundError(f"no request log at {path}")
    conn = sqlite3.connect(path, timeout=30)
    try:
        rows = _rows_for(conn, list(request_ids), shadow)
    finally:
        conn.close()
    return _decode(pd.DataFrame(rows, columns=list(COLUMNS)))


def write_feedback(db_url_or_path: str | Path, labels: dict[str, str]) -> tuple[int, list[str]]:
    """Store ground-truth labels by request id; returns (stored, unknown request ids)."""
    conn = connect(db_url_or_path)
    try:
        ids = list(labels)
        known = {row[0] for row in _rows_for(conn, ids, shadow=False)}
        now = utc_now()
        rows = [(rid, str(labels[rid]), now) for rid in ids if rid in known]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT OR REPLACE INTO feedback VALUES (?, ?, ?)", rows)
        conn.execute("COMMIT")
        return len(rows), [rid for rid in ids if rid not in known]
    finally:
        conn.close()
