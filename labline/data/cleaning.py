"""Cleaning that says what it dropped: declared row rules, the rows each removed, and their limits.

A data set's cleaning is a sequence of `Rule`s (what a row must satisfy to be kept, and the largest
share of rows the rule may remove). `apply_rules` applies them in order and counts, per rule, the
rows it removed. A rule that removes more than its share, or any row where its share is NONE (a
listing outside New York City's bounding box), makes `Cleaning.raise_if_exceeded` fail with the
first removed rows named, so bad data stops a run where it is read instead of vanishing quietly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from runner.contracts import RunManifest

NONE = 0.0  # a rule that may remove no row: every removed row is an error
EXAMPLES = 5  # removed rows named per rule


class CleaningError(ValueError):
    """A cleaning rule removed more rows than it declares it may."""


@dataclass(frozen=True)
class Rule:
    """One declared cleaning rule: `keep(rows)` is True for the rows it keeps."""

    name: str
    keeps: str  # what a kept row satisfies, in words
    max_share: float  # the largest share of the rows it sees that it may remove; NONE for none
    columns: tuple[str, ...]  # the columns it reads: shown for the rows it removes
    keep: Callable[[pd.DataFrame], pd.Series]

    def __post_init__(self):
        if not 0.0 <= self.max_share <= 1.0:
            raise ValueError(f"rule {self.name!r}: max_share must lie in 0..1, got {self.max_share}")

    def kept(self, rows: pd.DataFrame) -> pd.Series:
        """True for each row the rule keeps (a missing value is not kept)."""
        missing = [c for c in self.columns if c not in rows.columns]
        if missing:
            from labline.data.datasets import DatasetError

            raise DatasetError(
                f"cleaning rule {self.name!r} reads column(s) {missing}, which the rows lack; "
                f"their columns are {list(rows.columns)}"
            )
        return self.keep(rows).fillna(False).astype(bool)


@dataclass(frozen=True)
class RuleCount:
    """What one rule removed: the glued record (`CleaningGlue.cleaning` holds one per rule)."""

    rule: str
    keeps: str
    removed: int
    rows: int  # rows the rule saw
    max_share: float
    examples: list[dict[str, Any]]  # the first removed rows: row (1-based in the file), id, the rule's columns

    @property
    def exceeded(self) -> bool:
        return self.removed > self.max_share * self.rows

    def line(self) -> str:
        share = self.removed / self.rows if self.rows else 0.0
        limit = "none allowed" if self.max_share == NONE else f"at most {self.max_share:.0%}"
        return f"{self.rule}: removed {self.removed} of {self.rows} rows ({share:.1%}; {limit}), keeps {self.keeps}"

    def named(self) -> str:
        """The first removed rows, row number first: `row 18, id 22702906, longitude -75.1, ...`."""
        rows = [{"row": e.get("row"), **{k: v for k, v in e.items() if k != "row"}} for e in self.examples]
        named = "; ".join(", ".join(f"{k} {v}" for k, v in example.items()) for example in rows)
        return named + (f" and {self.removed - len(rows)} more" if self.removed > len(rows) else "")

    def failure(self) -> str:
        return f"{self.line()}: {self.named()}"


@dataclass(frozen=True)
class Cleaning:
    """The counts of every rule of one data set's cleaning, in the order they ran."""

    counts: tuple[RuleCount, ...] = ()

    def failures(self) -> list[RuleCount]:
        return [count for count in self.counts if count.exceeded]

    def raise_if_exceeded(self, dataset: str) -> None:
        failed = self.failures()
        if failed:
            raise CleaningError(
                f"cleaning {dataset!r} removed more rows than declared (labline/data/{dataset.split(':')[0]}.py): "
                + " | ".join(count.failure() for count in failed)
            )

    def to_glue(self) -> list[dict[str, Any]]:
        return [asdict(count) for count in self.counts]

    @classmethod
    def from_glue(cls, records: list[dict[str, Any]]) -> Cleaning:
        return cls(tuple(RuleCount(**record) for record in records))


def _examples(removed: pd.DataFrame, rule: Rule, id_column: str | None) -> list[dict[str, Any]]:
    shown = [c for c in ((id_column,) if id_column else ()) + rule.columns if c in removed.columns]
    return [
        {"row": int(index) + 1, **{c: _plain(row[c]) for c in shown}}
        for index, row in removed.head(EXAMPLES).iterrows()
    ]


def _plain(value: Any) -> Any:
    """A cell as JSON holds it (glued scraps are JSON)."""
    import pandas as pd

    if pd.api.types.is_scalar(value) and pd.isna(value):  # None, NaN, NA, NaT
        return None
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float):
        return float(f"{value:.10g}")  # 40.78442, not 40.784420000000004: a CSV round trip's noise
    return value if isinstance(value, (int, str)) else str(value)


def apply_rules(
    frame: pd.DataFrame, rules: tuple[Rule, ...], id_column: str | None = None
) -> tuple[pd.DataFrame, Cleaning]:
    """The rows every rule keeps (index unchanged: the file's row numbers) and each rule's count."""
    counts = []
    for rule in rules:
        keep = rule.kept(frame)
        removed = frame[~keep]
        examples = _examples(removed, rule, id_column)
        counts.append(RuleCount(rule.name, rule.keeps, len(removed), len(frame), rule.max_share, examples))
        frame = frame[keep]
    return frame, Cleaning(tuple(counts))


@dataclass(frozen=True)
class Cleaned:
    """A built-in data set after its rules: model rows, the same rows in the raw file's columns, the counts."""

    frame: pd.DataFrame
    raw: pd.DataFrame
    cleaning: Cleaning


def dataset_cleaning(source: str) -> Cleaned | None:
    """Data set `source` cleaned by its declared rules (a built-in's `clean_rows`); None for one without rules."""
    from pathlib import Path

    from labline.data.datasets import BUILTIN, _module

    name, _, arg = source.partition(":")
    if name not in BUILTIN or Path(source).exists():
        return None
    module = _module(name)
    return module.clean_rows(arg or None) if hasattr(module, "clean_rows") else None


def run_cleaning(run: RunManifest) -> dict[str, Cleaning]:
    """Each step of a run that glued its cleaning counts (runs from before the counts existed glued none)."""
    from labline.glue import CleaningGlue

    return {
        name: Cleaning.from_glue(CleaningGlue.read(name, step).cleaning)
        for name, step in run.steps.items()
        if CleaningGlue.provided_by(step) and CleaningGlue.complete_in(step)
    }


def cleaning_lines(run: RunManifest) -> list[str]:
    """What `labline run` prints after a run: one line per rule of each step that cleaned data."""
    steps = run_cleaning(run).items()
    return [f"{step} cleaning, {count.line()}" for step, cleaning in steps for count in cleaning.counts]
