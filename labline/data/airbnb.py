"""NYC Airbnb 2019 listings: predict the nightly price (regression).

The data has no listing date. A listing's `last_review` is the only date it carries, so it is
the date a listing is taken to "arrive" on (`labline data batches --by week` splits on it), and
`days_since_review` counts days from `last_review` to the declared as-of date `AS_OF` (the
date the listings were scraped, the latest review in the file). A fixed, declared date makes
training, batch scoring and serving compute the feature identically; a date past `AS_OF`
gives a negative value that validation refuses, rather than a silently different feature.

`derive_features` is the one function that turns raw listing rows (a file, a batch, or request
payloads) into model features; `load` adds the course's row filters on top of it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from labline.data.cleaning import NONE, Cleaned, Rule, apply_rules
from labline.data.datasets import BUILTIN
from labline.data.spec import DatasetSpec

DATA_FILE = BUILTIN["airbnb"].shipped  # the shipped sample, as the declaration names it
AS_OF = pd.Timestamp("2019-07-08")
DATE_COLUMN = "last_review"
# The course's cleaning: typical nightly prices only, listings inside New York City.
PRICE_BOUNDS = (10.0, 350.0)
LONGITUDE_BOUNDS = (-74.25, -73.50)
LATITUDE_BOUNDS = (40.5, 41.2)

NUMERIC = [
    "latitude",
    "longitude",
    "minimum_nights",
    "number_of_reviews",
    "reviews_per_month",
    "calculated_host_listings_count",
    "availability_365",
    "days_since_review",
]
CATEGORICAL = ["neighbourhood_group", "room_type"]
BOROUGHS = ["Bronx", "Brooklyn", "Manhattan", "Queens", "Staten Island"]
ROOM_TYPES = ["Entire home/apt", "Private room", "Shared room"]

SPEC = DatasetSpec(
    name="airbnb",
    target="price",
    numeric=NUMERIC,
    categorical=CATEGORICAL,
    text=["name"],
    task="regression",
    dtypes={**{c: "float" for c in NUMERIC}, **{c: "category" for c in CATEGORICAL}, "name": "text", "price": "float"},
    ranges={
        "latitude": list(LATITUDE_BOUNDS),
        "longitude": list(LONGITUDE_BOUNDS),
        "price": [0.0, 10000.0],  # Airbnb's nightly cap in 2019; the 10..350 filter is a modelling choice
        "minimum_nights": [1.0, 3650.0],
        "number_of_reviews": [0.0, 10000.0],
        "reviews_per_month": [0.0, 100.0],
        "calculated_host_listings_count": [1.0, 1000.0],
        "availability_365": [0.0, 365.0],
        "days_since_review": [0.0, 36500.0],
    },
    categories={"neighbourhood_group": BOROUGHS, "room_type": ROOM_TYPES},
    # Listings never reviewed have no last_review (about a fifth of them).
    max_missing_rate=0.3,
    min_rows=20,
    drop_columns=["id", "host_id", "host_name", "neighbourhood", DATE_COLUMN],
    description=(
        "NYC Airbnb 2019 listings (20,000-row sample): nightly price from location, room type, "
        "reviews, availability and the listing name; price 10..350, inside NYC's bounding box."
    ),
    source="Inside Airbnb / Kaggle 'New York City Airbnb Open Data' 2019 (CC0 1.0); data/nyc_airbnb_2019_sample.csv.gz",
)


def derive_features(rows: pd.DataFrame, as_of: pd.Timestamp = AS_OF) -> pd.DataFrame:
    """Raw listing rows -> feature columns; used by load(), batch validation and serving alike.

    Idempotent: rows that already carry `days_since_review` and no `last_review` keep theirs.
    """
    frame = rows.copy()
    if DATE_COLUMN in frame.columns:
        dates = pd.to_datetime(frame[DATE_COLUMN], errors="coerce")
        frame[DATE_COLUMN] = dates
        frame["days_since_review"] = (as_of - dates).dt.days.astype(float)
    elif "days_since_review" not in frame.columns:
        frame["days_since_review"] = np.nan
    if "reviews_per_month" in frame.columns and "number_of_reviews" in frame.columns:
        # No review yet means zero reviews per month, not an unknown rate.
        never = pd.to_numeric(frame["number_of_reviews"], errors="coerce") == 0
        frame.loc[never & frame["reviews_per_month"].isna(), "reviews_per_month"] = 0.0
    if "name" in frame.columns:
        frame["name"] = frame["name"].fillna("").astype(str)
    for column in NUMERIC + ([SPEC.target] if SPEC.target in frame.columns else []):
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


# The course's cleaning, in order. The price filter is a modelling choice (about 5 % of the 2019
# listings lie outside it, so a new sample may lose up to 10 %); a listing outside New York City
# is an error in the data, never dropped quietly: the NYC course's planned failure.
RULES = (
    Rule(
        "price",
        f"a nightly price of {PRICE_BOUNDS[0]:g}..{PRICE_BOUNDS[1]:g}",
        0.10,
        ("price",),
        lambda rows: rows[SPEC.target].between(*PRICE_BOUNDS),
    ),
    Rule(
        "nyc_bounds",
        f"longitude {LONGITUDE_BOUNDS[0]}..{LONGITUDE_BOUNDS[1]}, latitude {LATITUDE_BOUNDS[0]}..{LATITUDE_BOUNDS[1]}",
        NONE,
        ("longitude", "latitude"),
        lambda rows: rows["longitude"].between(*LONGITUDE_BOUNDS) & rows["latitude"].between(*LATITUDE_BOUNDS),
    ),
)


def in_scope(frame: pd.DataFrame) -> pd.Series:
    """Rows every rule of the course's cleaning keeps."""
    keep = pd.Series(True, index=frame.index)
    for rule in RULES:
        keep &= rule.kept(frame)
    return keep


def load(arg: str | None = None) -> pd.DataFrame:
    """The shipped sample (or the raw listings file `arg`, e.g. accumulated batches), cleaned."""
    return clean_rows(arg).frame


def clean_rows(arg: str | None = None) -> Cleaned:
    """The listings after the course's cleaning (RULES), with what each rule removed."""
    from labline.data.datasets import clean, declared_file, read_table

    raw = read_table(declared_file("airbnb", arg))
    missing = [
        c
        for c in (*SPEC.numeric, *SPEC.categorical, "name", SPEC.target)
        if c not in raw.columns and not (c == "days_since_review" and DATE_COLUMN in raw.columns)
    ]
    if missing:
        raise ValueError(f"{arg or DATA_FILE}: missing Airbnb columns {missing}; expected the columns of {DATA_FILE}")
    frame, cleaning = apply_rules(clean(derive_features(raw), SPEC), RULES, id_column="id")
    return Cleaned(frame.reset_index(drop=True), raw.loc[frame.index].reset_index(drop=True), cleaning)


def read(path: str) -> pd.DataFrame:
    """A raw batch as validation sees it: features derived, no rows filtered (so out-of-bounds
    listings are reported, not silently dropped)."""
    from labline.data.datasets import read_table

    return derive_features(read_table(path))
