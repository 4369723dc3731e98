"""The request log's tables, its `requests` view, and opening (creating or upgrading) a log.

Layout (schema version 2, documented in docs/serving.md): a `scorings` row per model call
holds what every record of that call shares (time, model version, artifact hash, arm, batch),
an `answers` row per record holds what is its own (payload, prediction, probabilities, and for
a request answered on its own its id, client key and latency), and the `requests` view joins
them back into one row per answered request, the shape every reader uses. Writing a call's
shared facts once keeps a 10,000-record batch's log write to the bytes that differ per record.

The database is in WAL mode. With `synchronous=NORMAL` (the default) a commit is in the
operating system's hands before the answer leaves, so killing the server (even SIGKILL) loses
nothing that was answered; a power cut may lose the last commits. `synchronous=FULL` also
fsyncs every commit, which survives power loss at a cost of one fsync per group.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = 2

# The two halves of the `requests` view, also queried on their own by request id. Requests
# answered one by one (and shadow copies) store their id; a batch record's rows are found from
# its scoring's row range (scorings first, the CROSS JOIN says so: the planner cannot know the
# ranges are short). Batch records are live answers that scored, hence shadow 0 and no error.
ONE_BY_ONE = """SELECT a.id, a.request_id, s.time, coalesce(a.client_key, a.request_id) AS client_key,
           a.payload, a.prediction, a.probabilities, s.model_version, s.artifact_sha256, s.arm,
           a.latency_ms, a.shadow, a.error, s.batch_id, s.score_batch, a.score_index
    FROM answers AS a JOIN scorings AS s ON s.id = a.scoring
    WHERE a.request_id IS NOT NULL"""
BATCH_RECORDS = """SELECT a.id, s.batch_id || '-' || (a.id - s.first_answer), s.time,
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
    f"CREATE VIEW IF NOT EXISTS requests AS {ONE_BY_ONE} UNION ALL {BATCH_RECORDS}",
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
    ("answers", None, "10000000"),
    ("answers", "answers_request", "1000000 1 1"),
    ("answers", "answers_scoring", "1000000 10"),
    ("scorings", None, "100000"),
    ("scorings", "scorings_time", "100000 10"),
    ("scorings", "scorings_batch", "10000 1"),
    ("scorings", "sqlite_autoindex_scorings_1", "100000 1"),
)

# The view's columns, in the order every reader returns them.
COLUMNS = (
    "request_id", "time", "client_key", "payload", "prediction", "probabilities", "model_version",
    "artifact_sha256", "arm", "latency_ms", "shadow", "error", "batch_id", "score_batch", "score_index",
)  # fmt: skip
INSERT = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
JSON_COLUMNS = ("payload", "prediction", "probabilities")


def db_path(url_or_path: str | Path) -> Path:
    """Accept a path or a `sqlite:///path` URL."""
    text = str(url_or_path)
    if text.startswith("sqlite:///"):
        return Path(text[len("sqlite:///") :])
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


def open_existing(url_or_path: str | Path) -> sqlite3.Connection:
    """A connection to read a log that must exist already (FileNotFoundError names the path)."""
    path = db_path(url_or_path)
    if not path.exists():
        raise FileNotFoundError(f"no request log at {path}")
    return sqlite3.connect(path, timeout=30)


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
        _seed_planner_stats(conn)
        if legacy:
            columns = ", ".join(COLUMNS)
            conn.execute(f"INSERT INTO requests ({columns}) SELECT {columns} FROM requests_v1 ORDER BY id")
            conn.execute("DROP TABLE requests_v1")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _seed_planner_stats(conn: sqlite3.Connection) -> None:
    conn.execute("ANALYZE sqlite_schema")  # creates sqlite_stat1, which the planner reads
    conn.execute("DELETE FROM sqlite_stat1 WHERE tbl IN ('answers', 'scorings')")
    conn.executemany("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)", PLANNER_STATS)
