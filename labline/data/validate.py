"""Data validation: the checks that stop a bad batch before any training.

`validate(frame, spec, reference=None)` returns a ValidationReport listing every check with its
figure and verdict, in three groups: schema (columns and types), values (categories, ranges,
missing rates, row count, duplicates) and, when a reference batch is given, distribution (see
`labline.data.distribution`). `report.raise_if_failed()` stops the pipeline with a
ValidationError when a blocking check fails.

Example:
    >>> from labline.data.iris import SPEC, load
    >>> validate(load(), SPEC).passed
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from labline.data.spec import DatasetSpec

# Real data has some genuine duplicates (Census: 24 of 32,561 rows); a batch where more than
# this share of rows repeats an earlier row was most likely appended twice.
MAX_DUPLICATE_RATE = 0.05
GROUPS = ("schema", "values", "distribution")


class ValidationError(RuntimeError):
    """A data batch failed a blocking check; the message names the checks and the report."""


@dataclass
class Check:
    name: str
    passed: bool
    figure: str
    detail: str = ""
    blocking: bool = True
    group: str = "values"

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else ("FAIL" if self.blocking else "warn")


@dataclass
class ValidationReport:
    dataset: str
    rows: int
    checks: list[Check] = field(default_factory=list)
    reference_rows: int | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks if c.blocking)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.blocking and not c.passed]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if not c.blocking and not c.passed]

    def add(
        self, name: str, passed: bool, figure: str, detail: str = "", blocking: bool = True, group: str = "values"
    ) -> None:
        self.checks.append(Check(name, bool(passed), figure, detail, blocking, group))

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "passed": self.passed,
            "checks": [asdict(c) for c in self.checks],
        }

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{**asdict(c), "verdict": c.verdict} for c in self.checks])

    def to_markdown(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [f"# Data validation: {self.dataset} ({self.rows} rows): {verdict}", ""]
        failed = len(self.failures)
        lines.append(
            f"{len(self.checks)} checks: {len(self.checks) - failed - len(self.warnings)} passed, "
            f"{failed} failed, {len(self.warnings)} warnings."
        )
        if self.failures:
            lines.append("Failing blocking checks: " + ", ".join(c.name for c in self.failures) + ".")
        for group in GROUPS:
            checks = [c for c in self.checks if c.group == group]
            if not checks:
                if group == "distribution":
                    lines += ["", "## Distribution", "", "_not checked: no reference batch was given_"]
                continue
            title = group.capitalize()
            if group == "distribution" and self.reference_rows is not None:
                title += f" (against a reference of {self.reference_rows} rows)"
            lines += ["", f"## {title}", "", "| check | figure | verdict | detail |", "|---|---|---|---|"]
            lines += [f"| {c.name} | {c.figure} | {c.verdict} | {c.detail.replace('|', '/')} |" for c in checks]
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_markdown())
        return path

    def raise_if_failed(self, report_path: str | Path | None = None) -> None:
        if self.passed:
            return
        names = ", ".join(f"{c.name} ({c.detail or c.figure})" for c in self.failures)
        where = f"; report: {report_path}" if report_path else ""
        raise ValidationError(f"data batch {self.dataset!r} failed validation: {names}{where}")


def _non_numeric(series: pd.Series) -> list[str]:
    """The distinct values of a column that do not parse as numbers (missing values aside)."""
    present = series.dropna()
    parsed = pd.to_numeric(present.astype(str), errors="coerce")
    return sorted(set(present[parsed.isna()].astype(str)))


def check_schema(frame: pd.DataFrame, spec: DatasetSpec, report: ValidationReport) -> None:
    """The declared columns, nothing missing or extra, numeric columns holding numbers."""
    expected = spec.columns
    missing = [c for c in expected if c not in frame.columns]
    extra = [c for c in frame.columns if c not in expected and c not in spec.drop_columns]
    report.add(
        "columns present",
        not missing,
        f"{len(expected) - len(missing)}/{len(expected)}",
        f"missing {missing}; expected {expected}" if missing else "",
        group="schema",
    )
    report.add(
        "no unexpected columns",
        not extra,
        str(len(extra)),
        f"unexpected {extra}; expected only {expected}" if extra else "",
        group="schema",
    )
    wrong = {}
    for col in spec.numeric:
        if col in frame.columns and not pd.api.types.is_numeric_dtype(frame[col]):
            wrong[col] = _non_numeric(frame[col])
    detail = "; ".join(
        f"{c} holds non-numbers such as {v[:3]}" if v else f"{c} has dtype {frame[c].dtype}" for c, v in wrong.items()
    )
    report.add(
        "numeric types", not wrong, f"{len(spec.numeric) - len(wrong)}/{len(spec.numeric)}", detail, group="schema"
    )


def check_values(
    frame: pd.DataFrame, spec: DatasetSpec, report: ValidationReport, max_duplicate_rate: float = MAX_DUPLICATE_RATE
) -> None:
    """Target in every row, row count, ranges, categories, missing rates, duplicate rows."""
    target_missing = int(frame[spec.target].isna().sum()) if spec.target in frame.columns else 0
    report.add(
        "target present in every row",
        target_missing == 0,
        str(target_missing),
        f"{target_missing} rows without {spec.target!r}" if target_missing else "",
    )
    low, high = spec.min_rows, spec.max_rows
    ok_rows = len(frame) >= low and (high is None or len(frame) <= high)
    report.add("row count", ok_rows, str(len(frame)), f"expected between {low} and {high or 'any'}")
    for col, (lo, hi) in spec.ranges.items():
        if col not in frame.columns or not pd.api.types.is_numeric_dtype(frame[col]):
            continue
        outside = int(((frame[col] < lo) | (frame[col] > hi)).sum())
        report.add(
            f"range {col}",
            outside == 0,
            f"{outside} outside",
            f"expected {lo}..{hi}; observed {frame[col].min()}..{frame[col].max()}" if outside else "",
        )
    for col, allowed in spec.categories.items():
        if col not in frame.columns:
            continue
        values = frame[col].dropna().astype(str)
        unknown = sorted(set(values) - set(map(str, allowed)))
        rows = int(values.isin(unknown).sum())
        report.add(
            f"categories {col}",
            not unknown,
            f"{len(unknown)} unknown",
            f"unexpected {unknown[:5]} in {rows} rows" if unknown else "",
        )
    for col in spec.features:
        if col not in frame.columns:
            continue
        rate = float(frame[col].isna().mean()) if len(frame) else 0.0
        report.add(
            f"missing {col}",
            rate <= spec.max_missing_rate,
            f"{rate:.3f}",
            f"above the bound {spec.max_missing_rate}" if rate > spec.max_missing_rate else "",
        )
    duplicates = int(frame.duplicated().sum())
    rate = duplicates / len(frame) if len(frame) else 0.0
    report.add(
        "duplicate rows",
        rate <= max_duplicate_rate,
        f"{duplicates} ({rate:.4f})",
        f"above the bound {max_duplicate_rate}" if rate > max_duplicate_rate else "",
    )


def validate(
    frame: pd.DataFrame,
    spec: DatasetSpec,
    reference: pd.DataFrame | None = None,
    kl_threshold: float | None = None,
    alpha: float | None = None,
    max_duplicate_rate: float = MAX_DUPLICATE_RATE,
) -> ValidationReport:
    """Run every check on `frame`; never raises for bad data (the report says what is bad).

    With `reference` (an earlier batch of the same data set, known good), also compares
    distributions: KL divergence per categorical column, a KS test per numeric one.
    """
    report = ValidationReport(spec.name, len(frame))
    check_schema(frame, spec, report)
    check_values(frame, spec, report, max_duplicate_rate=max_duplicate_rate)
    if reference is not None:
        from labline.data.distribution import ALPHA, KL_THRESHOLD, check_distribution

        report.reference_rows = len(reference)
        check_distribution(
            frame,
            reference,
            spec,
            report,
            kl_threshold=KL_THRESHOLD if kl_threshold is None else kl_threshold,
            alpha=ALPHA if alpha is None else alpha,
        )
    return report


def read_batch(path: str | Path, spec: DatasetSpec) -> pd.DataFrame:
    """Read a batch file of a declared data set as validation should see it.

    Uses the data set's own reader when it has one (Census: ", " separators, `?` markers),
    else reads the table, strips names and text, and turns missing markers into missing values.
    Numeric columns are not coerced, so text in a numeric column is reported as a type error.
    """
    from labline.data.datasets import BUILTIN, _module, read_table

    if spec.name in BUILTIN and hasattr(_module(spec.name), "read"):
        return _module(spec.name).read(path)
    frame = read_table(path)
    frame.columns = [str(c).strip() for c in frame.columns]
    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = frame[col].astype("string").str.strip().astype(object)
            frame.loc[frame[col].isna(), col] = None
    if spec.missing_markers:
        frame = frame.replace({m: None for m in spec.missing_markers})
    for col in spec.numeric:  # a column of numbers read as text (e.g. " 3") becomes numeric
        if col in frame.columns and not pd.api.types.is_numeric_dtype(frame[col]) and not _non_numeric(frame[col]):
            frame[col] = pd.to_numeric(frame[col])
    return frame
