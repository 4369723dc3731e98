"""Split a data set into dated batches, as if its rows had arrived period by period.

A batch file keeps the raw rows unchanged (the same columns as the source), so a batch is
exactly what `labline retrain --data` and `labline monitor --source` receive in production.
Rows without a date are written to `undated.csv`; rows before `since` to one history batch
(`before-<since>.csv`), the usual starting training set of a drill.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PERIODS = {"day": "D", "week": "W-SUN", "month": "M"}


def period_starts(dates: pd.Series, by: str) -> pd.Series:
    """The first day of each date's period (weeks start on Monday); NaT stays NaT."""
    if by not in PERIODS:
        raise ValueError(f"unknown period {by!r}; expected one of {sorted(PERIODS)}")
    return dates.dt.to_period(PERIODS[by]).dt.start_time.dt.normalize()


def split_batches(
    frame: pd.DataFrame, date_column: str, by: str = "week", since: str | None = None
) -> dict[str, pd.DataFrame]:
    """{batch name: rows}, names sorting in time order: `before-<since>`, `YYYY-MM-DD`, `undated`."""
    if date_column not in frame.columns:
        raise ValueError(f"date column {date_column!r} not found; the data has columns {list(frame.columns)}")
    dates = pd.to_datetime(frame[date_column], errors="coerce")
    starts = period_starts(dates, by)
    batches: dict[str, pd.DataFrame] = {}
    dated = starts.notna()
    if since:
        cutoff = pd.Timestamp(since)
        early = dated & (dates < cutoff)
        if early.any():
            batches[f"before-{cutoff.date()}"] = frame[early]
        dated &= ~early
    for start in sorted(starts[dated].unique()):
        batches[str(pd.Timestamp(start).date())] = frame[dated & (starts == start)]
    if (~starts.notna()).any():
        batches["undated"] = frame[starts.isna()]
    return batches


def write_batches(
    frame: pd.DataFrame, out_dir: str | Path, date_column: str, by: str = "week", since: str | None = None
) -> list[Path]:
    """Write each batch as `<out_dir>/<name>.csv`; returns the paths in time order."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rows in split_batches(frame, date_column, by, since).items():
        path = out / f"{name}.csv"
        rows.to_csv(path, index=False)
        paths.append(path)
    return paths
