"""docs/courses.md stays true: every command in its fenced shell blocks parses with labline's own
parser and is invoked by some test (the same subcommand with the same flags, values aside), and
its Census payloads are the ones tests/test_census_course.py sends to a real service.

How "invoked by some test" is decided, cheaply and without running anything: a test function (or
fixture) in tests/ invokes a command when the string literals in its body hold the subcommand's
words and every flag the doc's command uses; calling the `Server` helper counts as `serve`.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from functools import cache
from pathlib import Path

import pytest

from labline.cli import build_parser
from tests.fixtures import ROOT
from tests.test_census_course import ABOVE, BELOW

DOC = ROOT / "docs" / "courses.md"
GROUPS = {"data", "exercises", "model"}  # commands whose second word is a subcommand too
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def blocks(kind: str) -> list[str]:
    return [body for language, body in FENCE.findall(DOC.read_text()) if language == kind]


def doc_commands() -> list[list[str]]:
    return [shlex.split(line) for body in blocks("bash") for line in body.splitlines() if line.strip()]


def words_and_flags(argv: list[str]) -> tuple[tuple[str, ...], set[str]]:
    """`labline data batches FILE --by week` -> (("data", "batches"), {"--by"})."""
    args = argv[1:]
    words = tuple(args[:2]) if args[0] in GROUPS else tuple(args[:1])
    return words, {a.split("=")[0] for a in args if a.startswith("-")}


@cache
def invocations() -> list[tuple[str, frozenset[str]]]:
    """Each function (test, fixture, helper) of tests/ but this file, with the string literals of its body."""
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.name == Path(__file__).name:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                strings = {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
                calls = {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
                serve = {"serve"} if "Server" in calls else set()
                found.append((f"{path.relative_to(ROOT)}::{node.name}", frozenset(strings | serve)))
    return found


COMMANDS = doc_commands()


def test_the_doc_has_each_courses_commands():
    subcommands = {words_and_flags(argv)[0] for argv in COMMANDS}
    assert all(argv[0] == "labline" for argv in COMMANDS)
    assert {("run",), ("promote",), ("serve",), ("retrain",), ("sweep",), ("data", "batches")} <= subcommands
    assert ("exercises", "start") in subcommands and ("compare",) in subcommands


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(argv[1:4]) for argv in COMMANDS])
def test_each_command_parses_and_is_run_by_a_test(argv):
    args = build_parser(argv[1]).parse_args(argv[1:])  # an unknown flag or a missing value exits here
    assert args.handler is not None
    words, flags = words_and_flags(argv)
    runners = [name for name, strings in invocations() if set(words) | flags <= strings]
    assert runners, f"no test invokes `{' '.join(argv)}` (subcommand {words}, flags {sorted(flags)})"


def test_the_census_payloads_are_the_ones_the_service_is_tested_with():
    payloads = [json.loads(body) for body in blocks("json")]
    assert payloads == [BELOW, ABOVE]
    assert {"education-num", "marital-status", "capital-gain", "hours-per-week", "native-country"} <= set(BELOW)


def test_the_schedules_section_shows_the_measured_table_or_says_where_it_comes_from():
    results = ROOT / "benchmarks" / "results" / "train_schedules.json"
    section = DOC.read_text().split("## Training schedules", 1)[1]
    if results.exists():
        rows = json.loads(results.read_text())
        table = section.lower()
        assert "|" in section and all(row["dataset"] in table for row in rows["runs"]), rows
        assert f"{rows['speedup_wall']['census']:.1f}x" in section  # the figure measured, not an old one
    else:
        assert "Figures not yet measured" in section and "python benchmarks/train_schedules.py" in section


def test_the_check_finds_a_command_no_test_runs():
    words, flags = words_and_flags(shlex.split("labline retrain --data x.csv --no-such-flag"))
    assert not [name for name, strings in invocations() if set(words) | flags <= strings]
    assert [name for name, strings in invocations() if set(words) | {"--data"} <= strings]
