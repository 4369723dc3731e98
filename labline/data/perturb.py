"""Make a drifted or corrupted copy of a batch, for drills and tests.

A shift is `COLUMN=CHANGE`, optionally applied to a share of rows with `@SHARE`:

    price=+20%            numeric: relative change          minimum_nights=*2      multiply
    latitude=+0.5sd       numeric: add half a std. dev.     availability_365=-30   add
    longitude=set:-75.1@0.2   set a value (here on 20% of rows: out-of-bounds coordinates)
    room_type=mix:Shared room:0.5   resample rows so 50% are "Shared room" (category mix)
    reviews_per_month=missing:0.4   blank 40% of the values
    name=drop             remove the column (a missing column)

Example:
    >>> perturbed = perturb(frame, ["latitude=+0.5sd", "room_type=mix:Shared room:0.5"], seed=1)
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

NUMERIC_CHANGE = re.compile(r"^(?P<op>[+\-*])(?P<value>\d+(\.\d+)?)(?P<unit>%|sd)?$")
USAGE = (
    "expected COLUMN=+N, -N, *N, +N%, +Nsd, set:VALUE, mix:CATEGORY:SHARE, missing:SHARE or drop, "
    "optionally followed by @SHARE of rows"
)


class PerturbError(ValueError):
    """A shift that cannot be parsed or applied; the message says what was expected."""


def _share(text: str, shift: str) -> float:
    try:
        share = float(text)
    except ValueError:
        raise PerturbError(f"shift {shift!r}: share {text!r} is not a number between 0 and 1") from None
    if not 0.0 <= share <= 1.0:
        raise PerturbError(f"shift {shift!r}: share {share} is not between 0 and 1")
    return share


def _rows(frame: pd.DataFrame, share: float, rng: np.random.Generator) -> np.ndarray:
    """A random boolean mask selecting `share` of the rows."""
    mask = np.zeros(len(frame), dtype=bool)
    mask[rng.choice(len(frame), size=int(round(share * len(frame))), replace=False)] = True
    return mask


def _numeric(frame: pd.DataFrame, column: str, change: str, mask: np.ndarray, shift: str) -> pd.DataFrame:
    match = NUMERIC_CHANGE.match(change)
    values = pd.to_numeric(frame[column], errors="coerce")
    if match is None:
        raise PerturbError(f"shift {shift!r}: cannot read {change!r}; {USAGE}")
    if values.notna().sum() == 0:
        raise PerturbError(f"shift {shift!r}: column {column!r} has no numeric values to shift")
    op, value, unit = match["op"], float(match["value"]), match["unit"]
    sign = -1.0 if op == "-" else 1.0
    if op == "*":
        new = values * value
    elif unit == "%":
        new = values * (1 + sign * value / 100)
    elif unit == "sd":
        new = values + sign * value * float(values.std())
    else:
        new = values + sign * value
    frame[column] = values.where(~mask, new)
    return frame


def _mix(frame: pd.DataFrame, column: str, spec: str, rng: np.random.Generator, shift: str) -> pd.DataFrame:
    """Resample whole rows so `category` makes up `share` of the batch (same row count)."""
    category, sep, share_text = spec.rpartition(":")
    if not sep or not category:
        raise PerturbError(f"shift {shift!r}: expected mix:CATEGORY:SHARE")
    share = _share(share_text, shift)
    is_cat = frame[column].astype(str) == category
    if not is_cat.any():
        raise PerturbError(
            f"shift {shift!r}: category {category!r} does not occur in {column!r}; "
            f"it has {sorted(frame[column].dropna().astype(str).unique())[:10]}"
        )
    n_cat = int(round(share * len(frame)))
    chosen = [rng.choice(np.flatnonzero(is_cat), size=n_cat, replace=True)]
    if n_cat < len(frame):
        if (~is_cat).sum() == 0:
            raise PerturbError(f"shift {shift!r}: every row is {category!r}; no other rows to mix in")
        chosen.append(rng.choice(np.flatnonzero(~is_cat), size=len(frame) - n_cat, replace=True))
    order = rng.permutation(np.concatenate(chosen))
    return frame.iloc[order].reset_index(drop=True)


def apply_shift(frame: pd.DataFrame, shift: str, rng: np.random.Generator) -> pd.DataFrame:
    """Apply one `COLUMN=CHANGE[@SHARE]` shift; returns a new frame."""
    column, sep, change = shift.partition("=")
    column, change = column.strip(), change.strip()
    if not sep or not column or not change:
        raise PerturbError(f"shift {shift!r} is not COLUMN=CHANGE; {USAGE}")
    if column not in frame.columns:
        raise PerturbError(f"shift {shift!r}: column {column!r} not found; the batch has {list(frame.columns)}")
    frame = frame.copy()
    if change == "drop":
        return frame.drop(columns=column)
    if change.startswith("mix:"):
        return _mix(frame, column, change[4:], rng, shift)
    if change.startswith("missing:"):
        frame[column] = frame[column].astype(object).where(~_rows(frame, _share(change[8:], shift), rng), None)
        return frame
    change, at, share_text = change.partition("@")
    mask = _rows(frame, _share(share_text, shift), rng) if at else np.ones(len(frame), dtype=bool)
    if change.startswith("set:"):
        raw = change[4:]
        try:
            value: object = float(raw)
        except ValueError:
            value = raw
        frame[column] = frame[column].astype(object if isinstance(value, str) else float).where(~mask, value)
        return frame
    return _numeric(frame, column, change, mask, shift)


def perturb(frame: pd.DataFrame, shifts: list[str], seed: int = 0) -> pd.DataFrame:
    """Apply the shifts in order, reproducibly for a given seed."""
    if not shifts:
        raise PerturbError(f"no shift given; {USAGE}")
    rng = np.random.default_rng(seed)
    for shift in shifts:
        frame = apply_shift(frame, shift, rng)
    return frame
