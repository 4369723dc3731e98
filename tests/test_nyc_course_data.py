"""The NYC Airbnb course's data tests (its test_data.py) on what labline's explore writes.

explore keeps the course's cleaning and writes the kept rows in the raw file's columns
(`cleaned.csv`, glued as CleaningGlue.cleaned_path); the course's six checks run on that file:
column names, borough names, NYC's bounds, row count, price range, and the KL divergence of the
borough shares against a reference (the raw 2019 sample, as the course compares with its first week).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from labline.data.airbnb import BOROUGHS, LATITUDE_BOUNDS, LONGITUDE_BOUNDS, PRICE_BOUNDS
from labline.data.datasets import read_table
from labline.glue import CleaningGlue
from runner.contracts import RunManifest
from runner.exit_codes import ExitCode
from tests.fixtures import ROOT
from tests.fixtures.cli import run_cli

RAW = ROOT / "data" / "nyc_airbnb_2019_sample.csv.gz"
COLUMNS = [  # the course's expected columns: the raw file's, in its order
    "id",
    "name",
    "host_id",
    "host_name",
    "neighbourhood_group",
    "neighbourhood",
    "latitude",
    "longitude",
    "room_type",
    "price",
    "minimum_nights",
    "number_of_reviews",
    "last_review",
    "reviews_per_month",
    "calculated_host_listings_count",
    "availability_365",
]
KL_THRESHOLD = 0.2  # the course's kl_threshold


@pytest.fixture(scope="module")
def explored(tmp_path_factory):
    """`labline run --dataset airbnb --only explore` once: the manifest of the run."""
    runs = tmp_path_factory.mktemp("nyc-course")
    done = run_cli("run", "--dataset", "airbnb", "--only", "explore", "--runs", str(runs), "--no-register")
    assert done.returncode == ExitCode.OK, done.stderr
    (manifest,) = runs.glob("*/manifest.json")
    return RunManifest.from_dict(json.loads(manifest.read_text()))


@pytest.fixture(scope="module")
def data(explored):
    glue = CleaningGlue.read("explore", explored.steps["explore"])
    return pd.read_csv(glue.cleaned_path)


def kl_divergence(data: pd.DataFrame, reference: pd.DataFrame) -> float:
    """The course's check: KL divergence of the borough shares from the reference's."""
    shares = data["neighbourhood_group"].value_counts(normalize=True).sort_index()
    expected = reference["neighbourhood_group"].value_counts(normalize=True).sort_index()
    return float(scipy.stats.entropy(shares, expected, base=np.e))


def test_column_names(data):
    assert list(data.columns) == COLUMNS


def test_neighborhood_names(data):
    assert set(data["neighbourhood_group"].unique()) == set(BOROUGHS)


def test_proper_boundaries(data):
    inside = data["longitude"].between(*LONGITUDE_BOUNDS) & data["latitude"].between(*LATITUDE_BOUNDS)
    assert inside.all()


def test_row_count(data):
    assert 15000 < len(data) < 1000000


def test_price_range(data):
    assert data["price"].between(*PRICE_BOUNDS).all()


def test_similar_neighbourhood_distribution(data):
    reference = read_table(RAW)
    assert kl_divergence(data, reference) < KL_THRESHOLD
    # The check can fail: a sample that lost most of Brooklyn is far from the reference.
    skewed = pd.concat(
        [data[data["neighbourhood_group"] != "Brooklyn"], data[data["neighbourhood_group"] == "Brooklyn"].head(200)]
    )
    assert kl_divergence(skewed, reference) > KL_THRESHOLD


def test_the_cleaned_file_is_the_snapshot_in_the_raw_columns(explored, data):
    """The same rows as the modelling snapshot, which adds days_since_review and split (and so fails
    the course's column-names test)."""
    snapshot = pd.read_parquet(explored.steps["explore"].glued["snapshot_path"])
    assert set(snapshot.columns) - set(COLUMNS) == {"days_since_review", "split"}
    assert len(snapshot) == len(data) and snapshot["price"].sum() == pytest.approx(data["price"].sum())
    counts = CleaningGlue.read("explore", explored.steps["explore"]).cleaning
    assert [(c["rule"], c["removed"]) for c in counts] == [
        ("price", len(read_table(RAW)) - len(data)),
        ("nyc_bounds", 0),
    ]
