"""Validation catches each way a batch can be bad, and lets the clean batch through.

The clean batch is 3,000 Census rows; the reference is the other 29,561. Each corruption below
breaks one thing, and the test checks that exactly the check meant for it fails.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from labline.data import census, iris
from labline.data.distribution import kl_divergence
from labline.data.validate import ValidationError, read_batch, validate
from tests.fixtures.cli import run_cli


@pytest.fixture(scope="module")
def census_frame():
    return census.load()


@pytest.fixture(scope="module")
def batches(census_frame):
    batch = census_frame.sample(n=3000, random_state=0)
    return batch.reset_index(drop=True), census_frame.drop(batch.index).reset_index(drop=True)


def failing(report) -> set[str]:
    return {c.name for c in report.failures}


def test_clean_batches_pass(batches, census_frame):
    batch, reference = batches
    report = validate(batch, census.SPEC, reference=reference)
    assert report.passed, report.to_markdown()
    groups = {c.group for c in report.checks}
    assert groups == {"schema", "values", "distribution"}
    names = {c.name for c in report.checks}
    assert {"KL divergence sex", "KS test age", "duplicate rows", "categories race", "range age"} <= names
    whole = validate(census_frame, census.SPEC)
    assert whole.passed
    duplicates = next(c for c in whole.checks if c.name == "duplicate rows")
    assert duplicates.figure.startswith(f"{int(census_frame.duplicated().sum())} ")  # Census's genuine duplicates
    assert validate(iris.load(), iris.SPEC).passed


def corrupt_missing_column(f):
    return f.drop(columns=["education"])


def corrupt_extra_column(f):
    return f.assign(ssn="000-00-0000")


def corrupt_type(f):
    f = f.copy()
    f["age"] = f["age"].astype(object)
    f.loc[:4, "age"] = "thirty"
    return f


def corrupt_category(f):
    f = f.copy()
    f.loc[:9, "workclass"] = "Astronaut"
    return f


def corrupt_range(f):
    f = f.copy()
    f.loc[:2, "age"] = 150
    return f


def corrupt_missing_rate(f):
    f = f.copy()
    f.loc[: len(f) // 4, "occupation"] = None
    return f


def corrupt_row_count(f):
    return f.head(100)


def corrupt_duplicates(f):
    return pd.concat([f, f.head(600)], ignore_index=True)


def corrupt_target(f):
    f = f.copy()
    f.loc[:3, "salary"] = None
    return f


CORRUPTIONS = {
    corrupt_missing_column: ("columns present", "missing ['education']"),
    corrupt_extra_column: ("no unexpected columns", "unexpected ['ssn']"),
    corrupt_type: ("numeric types", "age holds non-numbers such as ['thirty']"),
    corrupt_category: ("categories workclass", "unexpected ['Astronaut'] in 10 rows"),
    corrupt_range: ("range age", "expected 16..100"),
    corrupt_missing_rate: ("missing occupation", "above the bound 0.1"),
    corrupt_row_count: ("row count", "expected between 500"),
    corrupt_duplicates: ("duplicate rows", "above the bound 0.05"),
    corrupt_target: ("target present in every row", "4 rows without 'salary'"),
}


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS), ids=lambda f: f.__name__)
def test_each_corruption_is_caught(batches, corrupt):
    check, detail = CORRUPTIONS[corrupt]
    report = validate(corrupt(batches[0]), census.SPEC)
    assert not report.passed
    assert check in failing(report)
    failed = next(c for c in report.failures if c.name == check)
    assert detail in failed.detail
    assert f"| {check} |" in report.to_markdown() and "FAILED" in report.to_markdown()
    with pytest.raises(ValidationError, match=check):
        report.raise_if_failed("runs/x/validation.md")


def test_categorical_shift_is_caught_by_kl(batches):
    batch, reference = batches
    women = batch[batch["sex"] == "Female"]
    shifted = pd.concat([batch[batch["sex"] == "Male"], women.head(len(women) // 10)])
    report = validate(shifted, census.SPEC, reference=reference)
    assert "KL divergence sex" in failing(report)
    kl = next(c for c in report.checks if c.name == "KL divergence sex")
    assert float(kl.figure) > 0.2 and "Female" in kl.detail


def test_numeric_shift_is_caught_by_ks(batches):
    batch, reference = batches
    report = validate(batch.assign(age=batch["age"] + 4), census.SPEC, reference=reference)
    assert failing(report) == {"KS test age"}
    ks = next(c for c in report.checks if c.name == "KS test age")
    expected = stats.ks_2samp(batch["age"] + 4, reference["age"]).pvalue
    assert ks.figure == f"p={expected:.3g}"


def test_ks_threshold_is_corrected_for_the_number_of_columns():
    """A p-value between alpha/m and alpha fails one test alone, but passes among m tests."""
    from labline.data.spec import DatasetSpec

    rng = np.random.default_rng(0)
    reference = pd.DataFrame({c: rng.normal(size=400) for c in "abcde"} | {"y": ["u", "v"] * 200})
    for shift in np.linspace(0.05, 0.4, 36):
        batch = reference.assign(a=reference["a"] + shift)
        p = stats.ks_2samp(batch["a"], reference["a"]).pvalue
        if 0.05 / 5 < p < 0.05:
            break
    else:
        pytest.fail("no shift gives a p-value between alpha/5 and alpha")
    five = DatasetSpec(name="toy", target="y", numeric=list("abcde"), min_rows=1)
    one = DatasetSpec(name="toy", target="y", numeric=["a"], drop_columns=list("bcde"), min_rows=1)
    assert "KS test a" not in failing(validate(batch, five, reference=reference))
    assert "KS test a" in failing(validate(batch, one, reference=reference))


def test_kl_divergence_matches_hand_computation():
    # Counts x:2, y:1 against x:1, y:2, each plus a pseudo-count of 0.5: p = (.625, .375), q = (.375, .625).
    p, q = np.array([0.625, 0.375]), np.array([0.375, 0.625])
    expected = float(np.sum(p * np.log2(p / q)))
    assert kl_divergence(pd.Series(["x", "x", "y"]), pd.Series(["x", "y", "y"])) == pytest.approx(expected)
    assert kl_divergence(pd.Series(["x", "y"]), pd.Series(["x", "y"])) == 0.0


def test_read_batch_keeps_census_format_and_type_errors(tmp_path, census_frame):
    raw = census_frame.head(600).copy()
    raw["age"] = raw["age"].astype(object)
    raw.loc[0, "age"] = "old"
    path = tmp_path / "batch.csv"
    raw.fillna("?").to_csv(path, index=False, sep=",")
    # The Census format: a space after each separator.
    path.write_text(path.read_text().replace(",", ", "))
    frame = read_batch(path, census.SPEC)
    assert list(frame.columns) == list(census_frame.columns)
    assert frame["workclass"].isna().sum() == census_frame.head(600)["workclass"].isna().sum()
    report = validate(frame, census.SPEC)
    assert failing(report) == {"numeric types"}


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """`labline ARGS` in this process (the same entry point as the command), with its output."""
    from labline.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_validate_exit_codes_and_report(tmp_path, batches, capsys):
    batch, reference = batches
    clean, bad, ref = tmp_path / "clean.csv", tmp_path / "bad.csv", tmp_path / "reference.csv"
    batch.to_csv(clean, index=False)
    corrupt_category(batch).assign(age=batch["age"] + 6).to_csv(bad, index=False)
    reference.to_csv(ref, index=False)
    code, out, err = cli(
        capsys, "data", "validate", str(clean), "--dataset", "census", "--reference", str(ref), "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["passed"] is True and report["reference_rows"] == len(reference)
    saved = tmp_path / "report.md"
    # Once as a user runs it, in its own process.
    failed = run_cli(
        "data", "validate", str(bad), "--dataset", "census", "--reference", str(ref), "--report", str(saved)
    )
    assert failed.returncode == 1
    assert "categories workclass" in failed.stdout and "KS test age" in failed.stdout and str(saved) in failed.stdout
    assert "| KS test age |" in saved.read_text()
    code, _, err = cli(capsys, "data", "validate", str(clean))
    assert code == 2 and "--dataset" in err


def test_cli_spec_prints_an_editable_spec(tmp_path, capsys):
    path = tmp_path / "toy.csv"
    pd.DataFrame(
        {"x": [1.0, 2.5, 3.0, 4.0], "colour": ["red", "blue", "red", "blue"], "label": ["a", "b", "a", "b"]}
    ).to_csv(path, index=False)
    code, out, err = cli(capsys, "data", "spec", str(path), "--target", "label")
    assert code == 0, err
    spec = json.loads(out)
    assert spec["target"] == "label" and spec["numeric"] == ["x"] and spec["categorical"] == ["colour"]
    assert spec["ranges"]["x"] == [1.0, 4.0] and spec["labels"] == ["a", "b"]
    (tmp_path / "spec.json").write_text(out)
    code, out, err = cli(capsys, "data", "validate", str(path), "--spec", str(tmp_path / "spec.json"))
    assert code == 0, out + err
    code, _, err = cli(capsys, "data", "spec", str(path), "--target", "nope")
    assert code == 2 and "'nope'" in err and "label" in err
    code, out, _ = cli(capsys, "data", "spec", "census")
    assert code == 0 and json.loads(out)["sensitive"] == ["sex", "race"]
