"""The class summary: per exercise, how the scores spread and which checks the class did not get.

Written as `summary.md` beside the gradebook and printed at the end of a grading; Markdown reads
well in a terminal too.
"""

from __future__ import annotations

from collections import Counter

from labline.exercises.gradebook import NOT_GRADED, Row

BAR = 30  # characters of the widest bar


def _distribution(rows: list[Row]) -> list[str]:
    total = max(row.report.total for row in rows)
    counts = Counter(row.report.score for row in rows)
    widest = max(counts.values())
    lines = ["| score | students | |", "|---:|---:|---|"]
    for score in range(total, -1, -1):
        count = counts.get(score, 0)
        lines.append(f"| {score}/{total} | {count} | {'#' * round(BAR * count / widest)} |")
    return lines


def _pass_rates(rows: list[Row]) -> list[str]:
    """Each check's pass rate, the least passed first: what the class did not get."""
    passed: Counter[str] = Counter()
    seen: dict[str, bool] = {}
    for row in rows:
        for check in row.report.checks:
            seen.setdefault(check.name, check.hidden)
            passed[check.name] += check.passed
    ranked = sorted(seen, key=lambda name: passed[name])
    lines = ["| passed | check |", "|---:|---|"]
    for name in ranked:
        hidden = " (hidden)" if seen[name] else ""
        lines.append(f"| {passed[name]}/{len(rows)} ({100 * passed[name] / len(rows):.0f}%) | {name}{hidden} |")
    return lines


def _item(text: str) -> str:
    """A multi-line message kept inside its list item (continuation lines indented)."""
    return text.replace("\n", "\n  ")


def _exercise(name: str, rows: list[Row]) -> list[str]:
    graded = [row for row in rows if row.status not in NOT_GRADED]
    statuses = Counter(row.status.value for row in rows)
    lines = [f"## {name}", "", f"{len(rows)} submissions: " + ", ".join(f"{n} {s}" for s, n in statuses.items())]
    if graded:
        scores = sorted(row.report.score for row in graded)
        mean = sum(scores) / len(scores)
        median = scores[len(scores) // 2]
        lines += ["", f"mean score {mean:.1f}, median {median} of {graded[0].report.total}", ""]
        lines += _distribution(graded) + [""] + _pass_rates(graded)
    trouble = [row for row in rows if row.status.value not in ("graded", "not done")]
    if trouble:
        lines += ["", "Submissions to look at:", ""]
        lines += [f"- {row.student} ({row.status.value}): {_item(row.report.message)}" for row in trouble]
    return lines + [""]


def class_summary(rows: list[Row]) -> str:
    """The summary of every exercise in `rows`, as Markdown."""
    lines = ["# Class summary", ""]
    for name in sorted({row.exercise for row in rows}):
        lines += _exercise(name or "(exercise unknown)", [row for row in rows if row.exercise == name])
    return "\n".join(lines)
