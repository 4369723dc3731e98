"""The reader API: every question replay, the A/B report, monitoring and the CLI ask of the
log, answered through its indexes. Nothing outside this package reads the log's tables.

Rows come back as DataFrames in the `requests` view's shape (COLUMNS), decoded: payload,
prediction and probabilities parsed from JSON, time as UTC timestamps, shadow as bool.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from labline.serve.request_log.schema import BATCH_RECORDS, COLUMNS, JSON_COLUMNS, ONE_BY_ONE, open_existing

_BATCH_REQUEST_ID = re.compile(r"^([0-9a-f]{32})-(\d+)$")
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM requests"


def read_requests(
    db_url_or_path: str | Path,
    since: Any = None,
    version: int | None = None,
    include_shadow: bool = False,
    limit: int | None = None,
) -> pd.DataFrame:
    """One row per answered request, oldest first.

    Columns: request_id, time (UTC datetime), client_key, payload (dict of the raw record),
    prediction, probabilities (dict label -> float, None for regression), model_version (None
    when served from a folder), artifact_sha256, arm, latency_ms, shadow (bool), error,
    batch_id, score_batch, score_index. Shadow answers are left out unless `include_shadow`.
    """
    where, params = [], []
    if not include_shadow:
        where.append("shadow = 0")
    if since is not None:
        where.append("time >= ?")
        params.append(_since_text(since))
    if version is not None:
        where.append("model_version = ?")
        params.append(int(version))
    sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return _frame(_fetch(db_url_or_path, sql, tuple(params)))


def find_requests(db_url_or_path: str | Path, request_ids: list[str], shadow: bool | None = None) -> pd.DataFrame:
    """The logged rows of these request ids (live and shadow answers, or only one kind), decoded
    like read_requests; ids not in the log are left out."""
    conn = open_existing(db_url_or_path)
    try:
        rows = rows_for(conn, list(request_ids), shadow)
    finally:
        conn.close()
    return _frame(rows)


def scoring_group(db_url_or_path: str | Path, score_batch: str, artifact_sha256: str, shadow: bool) -> pd.DataFrame:
    """The rows one model call scored together (live or shadow), in their order in that call:
    what replay scores again to reproduce one of them bit for bit."""
    sql = f"{_SELECT} WHERE score_batch = ? AND shadow = ? AND artifact_sha256 = ? ORDER BY id"
    group = _frame(_fetch(db_url_or_path, sql, (score_batch, int(shadow), artifact_sha256)))
    return group.sort_values("score_index")


def count_requests(db_url_or_path: str | Path, include_shadow: bool = False) -> int:
    """How many requests the log holds (shadow answers only when asked)."""
    sql = "SELECT count(*) FROM requests" + ("" if include_shadow else " WHERE shadow = 0")
    return _fetch(db_url_or_path, sql)[0][0]


def latest_deployment(db_url_or_path: str | Path, artifact_sha256: str, before: str | None = None) -> dict:
    """The latest recorded deployment of this artifact (at or before `before`): ref, arm,
    artifact_path, deployed_at and lineage (a dict); {} when none is recorded."""
    sql = "SELECT * FROM deployments WHERE artifact_sha256 = ?"
    params: tuple = (artifact_sha256,)
    if before is not None:
        sql += " AND deployed_at <= ?"
        params += (before,)
    conn = open_existing(db_url_or_path)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute(sql + " ORDER BY deployed_at DESC LIMIT 1", params).fetchone()
    finally:
        conn.close()
    if row is None:
        return {}
    return {**dict(row), "lineage": json.loads(row["lineage"])}


def expand_payloads(requests: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """The payloads as a feature frame (one column per field), indexed like `requests`.

    Example: `expand_payloads(read_requests(path))[spec.features]` is the production input
    that drift monitoring compares with the training data.
    """
    features = pd.DataFrame(list(requests["payload"]), index=requests.index)
    return features if columns is None else features.reindex(columns=columns)


def rows_for(conn: sqlite3.Connection, request_ids: list[str], shadow: bool | None) -> list[tuple]:
    """`requests` rows (COLUMNS) of these request ids, oldest first, found through the indexes: a
    stored id directly, a batch record's `<batch_id>-<i>` through its batch's scoring (the view
    computes such ids, so a WHERE on the view's request_id would read the whole log)."""
    only = "" if shadow is None else f" AND a.shadow = {int(bool(shadow))}"
    rows: list[tuple] = []
    for chunk in _chunks(request_ids):
        marks = ",".join("?" * len(chunk))
        rows += conn.execute(f"{ONE_BY_ONE} AND a.request_id IN ({marks}){only}", chunk).fetchall()
    if not shadow:  # batch records are live answers; their shadow copies store their ids
        rows += _batch_rows(conn, request_ids)
    return [row[1:] for row in sorted(rows)]  # sorted by id, which is then dropped


def _batch_rows(conn: sqlite3.Connection, request_ids: list[str]) -> list[tuple]:
    """View rows (id first) of the ids shaped `<batch_id>-<index>`, by their batch's row range."""
    wanted: dict[str, list[int]] = {}
    for request_id in request_ids:
        match = _BATCH_REQUEST_ID.match(request_id)
        if match:
            wanted.setdefault(match.group(1), []).append(int(match.group(2)))
    rows: list[tuple] = []
    ranges = "SELECT first_answer, records FROM scorings WHERE batch_id = ? AND first_answer IS NOT NULL"
    for batch_id, indexes in wanted.items():
        for first, count in conn.execute(ranges, (batch_id,)).fetchall():
            ids = [first + index for index in indexes if index < count]
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                sql = f"{BATCH_RECORDS} AND s.batch_id = ? AND a.id IN ({marks})"
                rows += conn.execute(sql, (batch_id, *chunk)).fetchall()
    return rows


def _fetch(db_url_or_path: str | Path, sql: str, params: tuple = ()) -> list[tuple]:
    conn = open_existing(db_url_or_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _frame(rows: list[tuple]) -> pd.DataFrame:
    """View rows (COLUMNS) as the decoded DataFrame every reader returns."""
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    for column in JSON_COLUMNS:
        frame[column] = [json.loads(v) if isinstance(v, (str, bytes)) else None for v in frame[column]]
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601")
    frame["shadow"] = frame["shadow"].astype(bool)
    frame["model_version"] = frame["model_version"].astype("Int64")
    return frame


def _since_text(since: Any) -> str | None:
    if since is None:
        return None
    if isinstance(since, str):
        since = datetime.fromisoformat(since)
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return since.astimezone(UTC).isoformat(timespec="microseconds")


def _chunks(items: list, size: int = 500):
    for start in range(0, len(items), size):
        yield items[start : start + size]
