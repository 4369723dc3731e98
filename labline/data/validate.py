"""Data validation: the checks that stop a bad batch before any training.

`validate(frame, spec)` returns a ValidationReport listing every check with its figure and
verdict; `report.raise_if_failed()` stops the pipeline with a ValidationError when a blocking
check fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from labline.data.spec import DatasetSpec


class ValidationError(RuntimeError):
    """A data batch failed a blocking check; the message names the checks and the report."""


@dataclass
class Check:
    name: str
    passed: bool
    figure: str
    detail: str = ""
    blocking: bool = True


@dataclass
class ValidationReport:
    dataset: str
    rows: int
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks if c.blocking)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.blocking and not c.passed]

    def add(self, name: str, passed: bool, figure: str, detail: str = "", blocking: bool = True) -> None:
        self.checks.append(Check(name, bool(passed), figure, detail, blocking))

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "rows": self.rows, "passed": self.passed,
                "checks": [asdict(c) for c in self.checks]}

    def to_markdown(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [f"# Data validation: {self.dataset} ({self.rows} rows): {verdict}", "",
                 "| check | figure | verdict | detail |", "|---|---|---|---|"]
        for c in self.checks:
            mark = "pass" if c.passed else ("FAIL" if c.blocking else "warn")
            lines.append(f"| {c.name} | {c.figure} | {mark} | {c.detail} |")
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


def check_schema(frame: pd.DataFrame, spec: DatasetSpec, report: ValidationReport) -> None:
    expected = spec.columns
    missing = [c for c in expected if c not in frame.columns]
    extra = [c for c in frame.columns if c not in expected and c not in spec.drop_columns]
    report.add("columns present", not missing, f"{len(expected) - len(missing)}/{len(expected)}",
               f"missing {missing}" if missing else "")
    report.add("no unexpected columns", not extra, str(len(extra)), f"unexpected {extra}" if extra else "")
    wrong = [c for c in spec.numeric if c in frame.columns and not pd.api.types.is_numeric_dtype(frame[c])]
    report.add("numeric types", not wrong, f"{len(spec.numeric) - len(wrong)}/{len(spec.numeric)}",
               f"not numeric: {wrong}" if wrong else "")


def check_values(frame: pd.DataFrame, spec: DatasetSpec, report: ValidationReport) -> None:
    target_missing = int(frame[spec.target].isna().sum()) if spec.target in frame.columns else 0
    report.add("target present in every row", target_missing == 0, str(target_missing),
               f"{target_missing} rows without {spec.target!r}" if target_missing else "")
    low, high = spec.min_rows, spec.max_rows
    ok_rows = len(frame) >= low and (high is None or len(frame) <= high)
    report.add("row count", ok_rows, str(len(frame)), f"expected between {low} and {high or 'any'}")
    for col, (lo, hi) in spec.ranges.items():
        if col not in frame.columns or not pd.api.types.is_numeric_dtype(frame[col]):
            continue
        outside = int(((frame[col] < lo) | (frame[col] > hi)).sum())
        report.add(f"range {col}", outside == 0, f"{outside} outside",
                   f"expected {lo}..{hi}; observed {frame[col].min()}..{frame[col].max()}" if outside else "")
    for col, allowed in spec.categories.items():
        if col not in frame.columns:
            continue
        unknown = sorted(set(frame[col].dropna().astype(str)) - set(allowed))
        report.add(f"categories {col}", not unknown, f"{len(unknown)} unknown",
                   f"unexpected {unknown[:5]}" if unknown else "")
    for col in spec.features:
        if col not in frame.columns:
            continue
        rate = float(frame[col].isna().mean())
        report.add(f"missing {col}", rate <= spec.max_missing_rate, f"{rate:.3f}",
                   f"bound {spec.max_missing_rate}" if rate > spec.max_missing_rate else "")


def validate(frame: pd.DataFrame, spec: DatasetSpec) -> ValidationReport:
    """Run every check on `frame`; never raises for bad data (the report says what is bad)."""
    report = ValidationReport(spec.name, len(frame))
    check_schema(frame, spec, report)
    check_values(frame, spec, report)
    return report
