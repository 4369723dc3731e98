"""Ground truth sent back for answered requests (`labline feedback`): stored by request id,
read by the A/B report and by monitoring."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from labline.serve.request_log.readers import rows_for
from labline.serve.request_log.rows import utc_now
from labline.serve.request_log.schema import connect, open_existing


def write_feedback(db_url_or_path: str | Path, labels: dict[str, str]) -> tuple[int, list[str]]:
    """Store ground-truth labels by request id; returns (stored, unknown request ids)."""
    conn = connect(db_url_or_path)
    try:
        ids = list(labels)
        known = {row[0] for row in rows_for(conn, ids, shadow=False)}
        now = utc_now()
        rows = [(rid, str(labels[rid]), now) for rid in ids if rid in known]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT OR REPLACE INTO feedback VALUES (?, ?, ?)", rows)
        conn.execute("COMMIT")
        return len(rows), [rid for rid in ids if rid not in known]
    finally:
        conn.close()


def feedback_labels(db_url_or_path: str | Path) -> dict[str, str]:
    """Every label sent back, by request id; {} for a log that has no feedback table yet."""
    conn = open_existing(db_url_or_path)
    try:
        return dict(conn.execute("SELECT request_id, label FROM feedback").fetchall())
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise
    finally:
        conn.close()
