"""UCI Census Income ("Adult"), declared: predict whether a salary is above 50K.

The shipped file is `data/census_income.csv.gz` (see data/README.md for provenance and licence).
Its rows are separated by ", " (a space after every comma) and `?` marks a missing value, so the
reader strips the spaces and turns `?` into a missing value. `sex` and `race` are declared
sensitive: the audit reports the model's rates and disparities for their groups.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from labline.data.cleaning import NONE, Cleaned, Rule, apply_rules
from labline.data.spec import DatasetSpec

FILE_NAME = "census_income.csv.gz"
NUMERIC = ["age", "fnlgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
CATEGORIES = {
    "workclass": [
        "Federal-gov",
        "Local-gov",
        "Never-worked",
        "Private",
        "Self-emp-inc",
        "Self-emp-not-inc",
        "State-gov",
        "Without-pay",
    ],
    "education": [
        "10th",
        "11th",
        "12th",
        "1st-4th",
        "5th-6th",
        "7th-8th",
        "9th",
        "Assoc-acdm",
        "Assoc-voc",
        "Bachelors",
        "Doctorate",
        "HS-grad",
        "Masters",
        "Preschool",
        "Prof-school",
        "Some-college",
    ],
    "marital-status": [
        "Divorced",
        "Married-AF-spouse",
        "Married-civ-spouse",
        "Married-spouse-absent",
        "Never-married",
        "Separated",
        "Widowed",
    ],
    "occupation": [
        "Adm-clerical",
        "Armed-Forces",
        "Craft-repair",
        "Exec-managerial",
        "Farming-fishing",
        "Handlers-cleaners",
        "Machine-op-inspct",
        "Other-service",
        "Priv-house-serv",
        "Prof-specialty",
        "Protective-serv",
        "Sales",
        "Tech-support",
        "Transport-moving",
    ],
    "relationship": ["Husband", "Not-in-family", "Other-relative", "Own-child", "Unmarried", "Wife"],
    "race": ["Amer-Indian-Eskimo", "Asian-Pac-Islander", "Black", "Other", "White"],
    "sex": ["Female", "Male"],
    "native-country": [
        "Cambodia",
        "Canada",
        "China",
        "Columbia",
        "Cuba",
        "Dominican-Republic",
        "Ecuador",
        "El-Salvador",
        "England",
        "France",
        "Germany",
        "Greece",
        "Guatemala",
        "Haiti",
        "Holand-Netherlands",
        "Honduras",
        "Hong",
        "Hungary",
        "India",
        "Iran",
        "Ireland",
        "Italy",
        "Jamaica",
        "Japan",
        "Laos",
        "Mexico",
        "Nicaragua",
        "Outlying-US(Guam-USVI-etc)",
        "Peru",
        "Philippines",
        "Poland",
        "Portugal",
        "Puerto-Rico",
        "Scotland",
        "South",
        "Taiwan",
        "Thailand",
        "Trinadad&Tobago",
        "United-States",
        "Vietnam",
        "Yugoslavia",
    ],
}
LABELS = ["<=50K", ">50K"]

SPEC = DatasetSpec(
    name="census",
    target="salary",
    numeric=NUMERIC,
    categorical=list(CATEGORIES),
    task="classification",
    labels=LABELS,
    positive_label=">50K",
    sensitive=["sex", "race"],
    dtypes={**{c: "int" for c in NUMERIC}, **{c: "category" for c in CATEGORIES}, "salary": "category"},
    # Plausible bounds, wider than observed (age 17..90, hours 1..99, capital gain capped at 99999).
    ranges={
        "age": [16, 100],
        "fnlgt": [1, 2_000_000],
        "education-num": [1, 16],
        "capital-gain": [0, 99_999],
        "capital-loss": [0, 10_000],
        "hours-per-week": [1, 99],
    },
    categories={**CATEGORIES, "salary": LABELS},
    missing_markers=["?"],
    # Observed: occupation 5.7%, workclass 5.6%, native-country 1.8% missing.
    max_missing_rate=0.1,
    min_rows=500,
    description=(
        "UCI Census Income (Adult): 32,561 adults from the 1994 US census, 14 attributes; "
        "label salary <=50K (24,720) or >50K (7,841)."
    ),
    source="UCI Machine Learning Repository, Census Income (Becker & Kohavi, 1996), CC BY 4.0",
)


def default_path() -> Path:
    """The shipped file, as its declaration finds it (labline.data.datasets.BUILTIN)."""
    from labline.data.datasets import declared_file

    return declared_file("census")


def read(path: str | Path) -> pd.DataFrame:
    """Read a file in the Census format: ", " separators, `?` for missing values.

    Numeric columns stay as read, so a corrupted one (text where numbers belong) shows up in
    validation as a type error rather than being silently coerced.
    """
    from labline.data.datasets import DatasetError

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"Census file {str(path)!r} does not exist; expected {FILE_NAME} in data/")
    frame = pd.read_csv(path, skipinitialspace=True, na_values=SPEC.missing_markers, keep_default_na=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = frame[col].astype("string").str.strip().astype(object)
            frame.loc[frame[col].isna(), col] = None
    return frame


# The reader strips spaces and reads `?` as missing; no row is dropped for that. The one row rule:
# a row without a known label cannot be trained or tested on, and the shipped file has none, so
# a batch with one is a broken file, named rather than dropped.
RULES = (
    Rule(
        "labelled",
        f"a {SPEC.target} of {' or '.join(LABELS)}",
        NONE,
        (SPEC.target,),
        lambda rows: rows[SPEC.target].isin(LABELS),
    ),
)


def load(arg: str | None = None) -> pd.DataFrame:
    """The shipped Census rows, or a batch in the same format (`census:PATH`), cleaned."""
    return clean_rows(arg).frame


def clean_rows(arg: str | None = None) -> Cleaned:
    """The rows RULES keep, and what each removed (explore fails on a removed row)."""
    from labline.data.datasets import declared_file

    raw = read(declared_file("census", arg))
    kept, cleaning = apply_rules(raw, RULES)
    kept = kept.reset_index(drop=True)
    return Cleaned(kept, kept, cleaning)
