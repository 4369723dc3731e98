"""Grading a whole class: a folder of planted submissions in, a gradebook, feedback pages and a summary out.

The submissions are made here from the solutions (`labline.exercises.planted`): each kind of mistake
and misbehaviour for exercise 03 (pandas only), plus a correct one of exercise 04. One grading of the
folder serves every assertion; a second and third grading show that unchanged submissions are skipped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil

import nbformat
import psutil
import pytest

from labline.exercises.catalog import discover
from labline.exercises.classroom import find_submissions
from labline.exercises.isolation import parse_size, write_confinement
from labline.exercises.planted import EXERCISE, LEFT_BEHIND, check_names, plant_class, solved
from tests.fixtures import ROOT
from tests.fixtures.cli import run_cli

OTHER = "04_slices_and_bias"
LIMITS = ["--cell-timeout", "30", "--timeout", "300", "--memory", "2G", "--workers", "2"]


def snapshot(folder):
    """Every file and folder under `folder` with a hash of its bytes: what 'nothing changed' compares."""
    state = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        state[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return state


def left_behind():
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if LEFT_BEHIND in " ".join(process.info["cmdline"] or []):
            found.append(process.pid)
    return found


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    outside = root / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "notes.txt").write_text("an instructor's file")
    folder = root / "submissions"
    planted = plant_class(folder, outside, ROOT / "solutions", ROOT / "exercises")
    other = solved(
        nbformat.read(ROOT / "exercises" / f"{OTHER}.ipynb", as_version=4),
        nbformat.read(ROOT / "solutions" / f"{OTHER}.ipynb", as_version=4),
    )
    nbformat.write(other, folder / "correct" / f"{OTHER}.ipynb")
    before = snapshot(root)
    out = root / "grades"
    result = run_cli("exercises", "grade", str(folder), "--out", str(out), *LIMITS, timeout=1200)
    return {"root": root, "folder": folder, "out": out, "planted": planted, "before": before, "result": result}


def rows(out):
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as handle:
        return {(row["student"], row["exercise"]): row for row in csv.DictReader(handle)}


def test_every_planted_submission_gets_the_row_planted(graded):
    result = graded["result"]
    assert result.returncode == 0, result.stdout + result.stderr
    names = check_names(nbformat.read(ROOT / "solutions" / f"{EXERCISE}.ipynb", as_version=4))
    book = rows(graded["out"])
    assert len(book) == len(graded["planted"]) + 1
    for planted in graded["planted"]:
        row = book[(planted.student, EXERCISE)]
        marks = {cell: row[f"{EXERCISE}: {name}"] for cell, name in names.items()}
        expected = {cell: "1" if cell in planted.passed else "0" for cell in names}
        assert (row["status"], marks) == (planted.status.value, expected), (planted.kind, row)
        assert (row["score"], row["total"]) == (str(len(planted.passed)), "8"), planted.kind
    other = book[("correct", OTHER)]
    assert (other["status"], other["score"]) == ("graded", other["total"]), other
    said = result.stderr.find(f"grading {len(book)} submission(s), 2 at once")
    assert 0 <= said < result.stderr.find(f"[1/{len(book)}]"), result.stderr  # before the first is done
    assert f"[{len(book)}/{len(book)}]" in result.stderr, result.stderr  # the progress, one line per submission
    assert f"({len(book)} graded, 0 unchanged, 0 not gradable)" in result.stdout, result.stdout


def test_a_failed_check_shows_its_message_and_statement_on_the_feedback_page(graded):
    page = (graded["out"] / "feedback" / f"one_check_wrong--{EXERCISE}.html").read_text()
    assert "score: 7/8" in page and page.count("class='FAIL'>FAIL") == 1
    assert "AssertionError: expected one problem (petal_width), got [&#x27;sepal_width: 1 values outside" in page
    assert "the check: <code>assert len(_problems) == 1" in page
    stub = (graded["out"] / "feedback" / f"stub_left--{EXERCISE}.html").read_text()
    assert "is not done yet" in stub and "NotImplementedError: Exercise: return check_columns(batch)" in stub
    crashed = (graded["out"] / "feedback" / f"os_exit--{EXERCISE}.html").read_text()
    assert "crashed</b>: the kernel died while running cell" in crashed


@pytest.mark.skipif(write_confinement() is not None, reason=f"writes cannot be confined here: {write_confinement()}")
def test_nothing_outside_the_submissions_folders_changed(graded):
    after = snapshot(graded["root"])
    grades = {key for key in after if key == "grades" or key.startswith("grades/")}
    assert {k: v for k, v in after.items() if k not in grades} == graded["before"]
    report = json.loads((graded["out"] / "reports" / f"write_outside--{EXERCISE}.json").read_text())
    denied = [e["error"] for e in report["report"]["cell_errors"]]
    assert denied and all(e.startswith("PermissionError") for e in denied), denied
    assert left_behind() == [], "a process a submission started outlived its grading"


def test_summary_names_what_the_class_did_not_get(graded):
    summary = (graded["out"] / "summary.md").read_text()
    assert summary.strip() in graded["result"].stdout
    planted = graded["planted"]
    passed = sum("hidden2" in p.passed for p in planted)
    assert (
        f"| {passed}/{len(planted)} ({100 * passed / len(planted):.0f}%) | check_ranges counts" in summary
        and "allows the bounds (hidden) |" in summary
    )
    assert "- infinite_loop (timed out): time limit reached in cell" in summary


def test_regrading_skips_unchanged_submissions_and_grades_the_new_ones(graded):
    folder, out = graded["folder"], graded["out"]
    before = rows(out)
    again = run_cli("exercises", "grade", str(folder), "--out", str(out), *LIMITS, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"(0 graded, {len(graded['planted']) + 1} unchanged, 0 not gradable)" in again.stdout
    assert rows(out) == before
    (folder / "zed").mkdir()
    (folder / "zed" / f"{EXERCISE}.ipynb").write_text("this is not a notebook")
    third = run_cli("exercises", "grade", str(folder), "--out", str(out), "--format", "json", *LIMITS, timeout=600)
    assert third.returncode == 1, third.stdout + third.stderr  # a submission that could not be graded
    book = {(r["student"], r["exercise"]): r for r in json.loads((out / "gradebook.json").read_text())}
    assert book[("zed", EXERCISE)]["status"] == "unreadable" and book[("zed", EXERCISE)]["score"] == 0
    assert book[("correct", EXERCISE)]["checks"] and all(book[("correct", EXERCISE)]["checks"].values())
    assert f"(0 graded, {len(graded['planted']) + 1} unchanged, 1 not gradable)" in third.stdout  # zed
    shutil.rmtree(folder / "zed")


def test_students_are_named_by_their_folder_or_file_and_exercises_found_as_for_one(tmp_path):
    template = ROOT / "exercises" / f"{EXERCISE}.ipynb"
    (tmp_path / "alice" / "week3").mkdir(parents=True)
    shutil.copy(template, tmp_path / "alice" / "week3" / "anything.ipynb")
    shutil.copy(template, tmp_path / f"{EXERCISE}-bob.ipynb")
    (tmp_path / "carol.ipynb").write_text("{}")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    shutil.copy(template, tmp_path / ".ipynb_checkpoints" / "x.ipynb")
    found = {s.student: s for s in find_submissions([tmp_path], discover())}
    assert sorted(found) == ["alice", "bob", "carol"]
    assert found["alice"].exercise.name == EXERCISE and found["alice"].folder == tmp_path / "alice"
    assert found["bob"].exercise.name == EXERCISE and found["bob"].folder is None
    assert found["carol"].exercise is None and "pass --exercise" in found["carol"].problem


@pytest.mark.parametrize(
    ("text", "expected"), [("4G", 4 * 2**30), ("512m", 512 * 2**20), ("1.5GiB", int(1.5 * 2**30)), ("0", None)]
)
def test_memory_sizes(text, expected):
    assert parse_size(text) == expected


def test_a_bad_memory_size_or_worker_count_is_a_usage_error(tmp_path):
    for option, value, expected in [
        ("--memory", "lots", "--memory: a memory size is"),
        ("--workers", "0", "--workers"),
    ]:
        result = run_cli("exercises", "grade", str(tmp_path), option, value)
        assert result.returncode == 2 and expected in result.stderr, result.stderr
