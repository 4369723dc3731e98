"""The NYC Airbnb data set: declared cleaning, the derived days-since-review feature, dated
batches and perturbed copies (library and `labline data batches/perturb`)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from labline.data.airbnb import AS_OF, SPEC, clean_rows, derive_features, in_scope, read
from labline.data.batches import split_batches
from labline.data.cleaning import Cleaning, CleaningError
from labline.data.datasets import load_dataset, read_table
from labline.data.perturb import PerturbError, perturb
from labline.data.validate import validate
from labline.report.cleaning import cleaning_section
from runner.contracts import StepStatus
from runner.exit_codes import ExitCode
from tests.fixtures import ROOT
from tests.fixtures.cli import run_cli

RAW = ROOT / "data" / "nyc_airbnb_2019_sample.csv.gz"


@pytest.fixture(scope="module")
def raw():
    return read_table(RAW)


def test_load_applies_the_course_cleaning(raw):
    frame, spec = load_dataset("airbnb")
    assert spec is SPEC and spec.task == "regression" and spec.text == ["name"]
    assert frame["price"].between(10, 350).all()
    assert frame["longitude"].between(-74.25, -73.50).all() and frame["latitude"].between(40.5, 41.2).all()
    expected = raw[
        raw["price"].between(10, 350) & raw["longitude"].between(-74.25, -73.5) & raw["latitude"].between(40.5, 41.2)
    ]
    assert len(frame) == len(expected) and len(frame) < len(raw)
    assert validate(frame, spec).passed


def test_days_since_review_is_counted_to_the_declared_date(raw):
    rows = derive_features(raw.head(50))
    dates = pd.to_datetime(raw.head(50)["last_review"])
    np.testing.assert_array_equal(rows["days_since_review"].to_numpy(), (AS_OF - dates).dt.days.to_numpy(dtype=float))
    never = rows["number_of_reviews"] == 0
    assert rows.loc[never, "days_since_review"].isna().all() and (rows.loc[never, "reviews_per_month"] == 0).all()
    # Serving payloads that already carry the feature keep it: the derivation is idempotent.
    again = derive_features(rows.drop(columns="last_review"))
    np.testing.assert_array_equal(again["days_since_review"].to_numpy(), rows["days_since_review"].to_numpy())


def test_read_keeps_out_of_scope_rows_for_validation_to_see(raw, tmp_path):
    path = tmp_path / "batch.csv"
    raw.head(200).to_csv(path, index=False)
    rows = read(str(path))
    assert len(rows) == 200 and (~in_scope(rows)).sum() == (~raw.head(200)["price"].between(10, 350)).sum()


def test_weekly_batches_cover_every_row_once(raw):
    batches = split_batches(raw, "last_review", "week", since="2019-06-03")
    assert sum(len(b) for b in batches.values()) == len(raw)
    assert len(batches["undated"]) == int(raw["last_review"].isna().sum())
    weeks = [name for name in batches if name[0].isdigit()]
    assert weeks == sorted(weeks) and all(pd.Timestamp(w).day_of_week == 0 for w in weeks)  # Mondays
    assert pd.to_datetime(batches["before-2019-06-03"]["last_review"]).max() < pd.Timestamp("2019-06-03")
    week = pd.to_datetime(batches["2019-06-24"]["last_review"])
    assert week.min() >= pd.Timestamp("2019-06-24") and week.max() <= pd.Timestamp("2019-06-30")


def test_perturbations_have_the_stated_size(raw):
    rows = raw.head(1000)
    shifted = perturb(rows, ["latitude=+0.5sd", "price=+20%", "minimum_nights=*2"], seed=0)
    assert shifted["latitude"].mean() - rows["latitude"].mean() == pytest.approx(0.5 * rows["latitude"].std())
    np.testing.assert_allclose(shifted["price"], rows["price"] * 1.2)
    np.testing.assert_allclose(shifted["minimum_nights"], rows["minimum_nights"] * 2)
    mixed = perturb(rows, ["room_type=mix:Shared room:0.5"], seed=0)
    assert len(mixed) == 1000 and (mixed["room_type"] == "Shared room").mean() == 0.5
    outside = perturb(rows, ["longitude=set:-75.1@0.2"], seed=0)
    assert (outside["longitude"] == -75.1).sum() == 200
    assert "name" not in perturb(rows, ["name=drop"], seed=0).columns
    blank = perturb(rows, ["availability_365=missing:0.3"], seed=0)
    assert blank["availability_365"].isna().sum() == 300


@pytest.mark.parametrize(
    "shift,message",
    [
        ("nope=+1", "column 'nope' not found"),
        ("price=+x", "cannot read '\\+x'"),
        ("room_type=mix:Castle:0.5", "category 'Castle' does not occur"),
        ("price=set:1@2", "share 2.0 is not between 0 and 1"),
        ("price", "is not COLUMN=CHANGE"),
    ],
)
def test_bad_shifts_are_named(raw, shift, message):
    with pytest.raises(PerturbError, match=message):
        perturb(raw.head(50), [shift])


def test_batches_and_perturb_commands(tmp_path):
    done = run_cli("data", "batches", str(RAW), "--by", "month", "--since", "2019-01-01", "--out", str(tmp_path / "b"))
    assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert files[0] == "2019-01-01.csv" and "before-2019-01-01.csv" in files and "undated.csv" in files
    out = tmp_path / "drifted.csv"
    done = run_cli(
        "data",
        "perturb",
        str(tmp_path / "b" / "2019-06-01.csv"),
        "--shift",
        "price=+10%",
        "--shift",
        "name=drop",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    before, after = read_table(tmp_path / "b" / "2019-06-01.csv"), read_table(out)
    np.testing.assert_allclose(after["price"], before["price"] * 1.1)
    bad = run_cli("data", "perturb", str(out), "--shift", "price=+10", "--shift", "oops=drop", "--out", str(out))
    assert bad.returncode == 2 and "column 'oops' not found" in bad.stderr


def test_a_listing_outside_nyc_stops_the_run_at_explore_with_the_row_named(raw, tmp_path):
    """The NYC course's planned failure: a new sample with one point outside the city fails explore."""
    rows = raw.head(200).copy()
    rows.loc[17, "longitude"] = -75.1  # west of the bounding box (-74.25..-73.50)
    path = tmp_path / "new_week.csv"
    rows.to_csv(path, index=False)
    done = run_cli(
        "run",
        "--dataset",
        f"airbnb:{path}",
        "--runs",
        str(tmp_path / "runs"),
        "--no-register",
        env={"LABLINE_DATA_DIRS": str(tmp_path)},
    )
    assert done.returncode == ExitCode.FAILED, done.stderr
    assert "step 'explore' failed" in done.stderr and "CleaningError" in done.stderr
    assert "nyc_bounds: removed 1 of" in done.stderr and "none allowed" in done.stderr
    assert f"row 18, id {rows.loc[17, 'id']}, longitude -75.1, latitude {rows.loc[17, 'latitude']}" in done.stderr
    assert "explore cleaning, price: removed" in done.stderr  # the counts are printed after the run
    (manifest,) = (tmp_path / "runs").glob("*/manifest.json")
    steps = json.loads(manifest.read_text())["steps"]
    assert {name for name, step in steps.items() if step["status"] == StepStatus.SKIPPED} == set(steps) - {"explore"}
    # The run report's cleaning section says the same: the bounds rule failed, its row named.
    html = cleaning_section(json.loads(manifest.read_text()), manifest.parent, "r")
    bounds = html[html.index("<code>nyc_bounds</code>") :]
    assert "s-failed" in bounds and f"row 18, id {rows.loc[17, 'id']}, latitude" in bounds
    assert "longitude -75.1" in bounds
    assert "s-succeeded" in html[: html.index("<code>nyc_bounds</code>")]  # the price rule kept within its share


def test_cleaning_counts_each_rule_and_its_limit(raw):
    cleaned = clean_rows()
    price, bounds = cleaned.cleaning.counts
    assert (price.rule, price.rows, price.removed) == ("price", len(raw), int((~raw["price"].between(10, 350)).sum()))
    assert (bounds.rows, bounds.removed) == (len(raw) - price.removed, 0) and not cleaned.cleaning.failures()
    assert list(cleaned.raw.columns) == list(raw.columns) and len(cleaned.raw) == len(cleaned.frame)
    assert price.examples[0] == {"row": 83, "id": int(raw.loc[82, "id"]), "price": float(raw.loc[82, "price"])}
    # A price filter that removed over its declared tenth fails, naming the first rows.
    cheap = Cleaning((replace(price, removed=int(0.2 * price.rows)),))
    with pytest.raises(CleaningError, match=r"price: removed 4000 of 20000 rows \(20.0%; at most 10%\).*row 83, id"):
        cheap.raise_if_exceeded("airbnb")
