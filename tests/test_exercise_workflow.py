"""A student's workflow: a working copy to work in and grade, a release without solutions, feedback to act on.

Two kernel runs in all (a working copy of 03 graded, a wrong answer of 04 graded); the rest is files.
"""

from __future__ import annotations

import json
import shutil

import nbformat
import numpy as np
import pandas as pd
import pytest

from labline.exercises.catalog import discover
from labline.exercises.explained import explain, explain_asserts
from labline.exercises.grading import grade_notebook
from labline.exercises.plain import LIMIT, brief, plain, shown
from labline.exercises.planted import solved
from labline.exercises.release import LeakError, release, scan, secret_lines
from labline.exercises.template import HIDDEN_CHECKS
from tests.fixtures import ROOT
from tests.fixtures.cli import run_cli


def read(kind, name):
    return nbformat.read(ROOT / kind / f"{name}.ipynb", as_version=4)


# ---- the working copy ---------------------------------------------------------------------------------------------


def test_start_then_grade_the_working_copy(tmp_path):
    work = tmp_path / "work"
    started = run_cli("exercises", "start", "03", "--dir", str(work))
    assert started.returncode == 0, started.stderr
    copy = work / "03_data_checks.ipynb"
    assert copy.read_bytes() == (ROOT / "exercises" / "03_data_checks.ipynb").read_bytes()
    assert "03_data_checks.ipynb" in started.stdout and "labline exercises grade" in started.stdout

    nbformat.write(solved(read("exercises", "03_data_checks"), read("solutions", "03_data_checks")), copy)
    again = run_cli("exercises", "start", "03_data_checks", "--dir", str(work))
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
    assert "BEGIN SOLUTION" in copy.read_text(), "a refused start must leave the student's work alone"

    graded = run_cli("exercises", "grade", "03_data_checks", "--dir", str(work), "--json", timeout=300)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    report = json.loads(graded.stdout)
    assert (report["notebook"], report["score"], report["total"]) == (str(copy), 8, 8)

    forced = run_cli("exercises", "start", "03_data_checks", "--dir", str(work), "--force")
    assert forced.returncode == 0 and copy.read_bytes() == (ROOT / "exercises" / "03_data_checks.ipynb").read_bytes()
    missing = run_cli("exercises", "grade", "04_slices_and_bias", "--dir", str(work))
    assert missing.returncode == 2 and "labline exercises start 04_slices_and_bias" in missing.stderr
    unknown = run_cli("exercises", "start", "09_nothing", "--dir", str(work))
    assert unknown.returncode == 2 and "known: 01_torch_inference" in unknown.stderr


# ---- the release --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    out = tmp_path_factory.mktemp("release") / "students"
    result = run_cli("exercises", "release", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_a_release_holds_the_templates_and_environment_and_no_hidden_check(released):
    names = [e.name for e in discover()]
    assert sorted(p.stem for p in (released / "exercises").glob("*.ipynb")) == names
    for name in (
        "Makefile",
        "pyproject.toml",
        "requirements.lock",
        "README.md",
        "pipeline.yaml",
        "jupyter_server_config.py",
    ):
        assert (released / name).is_file(), name
    assert (released / "labline" / "cli.py").is_file() and (released / "runner" / "engine.py").is_file()
    assert (released / "notebooks" / "train_torch.ipynb").is_file() and (released / "data" / "iris_new.csv").is_file()
    assert not list(released.rglob("solutions")) and not list(released.rglob("__pycache__"))
    hidden = [
        (e.name, c)
        for e in discover()
        for c in read("solutions", e.name).cells
        if HIDDEN_CHECKS in c.metadata.get("tags", [])
    ]
    names_of_hidden = [c.source.splitlines()[0] for _, c in hidden]  # "# Check: ..." of each hidden check
    assert len(names_of_hidden) >= 8
    for path in (p for p in released.rglob("*") if p.is_file() and p.suffix in (".ipynb", ".py", ".md", ".yaml")):
        text = path.read_text(encoding="utf-8")
        leaked = [line for line in names_of_hidden if line in text] + (
            [HIDDEN_CHECKS] if path.suffix == ".ipynb" and HIDDEN_CHECKS in text else []
        )
        assert not leaked, (path, leaked)
    listing = run_cli("exercises", "list", cwd=released)
    assert listing.returncode == 0, listing.stderr
    assert (
        "03_data_checks\tExercise 03: the checks that stop a corrupted batch\texercises/03_data_checks.ipynb"
        in listing.stdout
    )
    assert "solutions" not in listing.stdout
    started = run_cli("exercises", "start", "04", cwd=released)
    assert started.returncode == 0 and "hand it in" in started.stdout, started.stdout + started.stderr
    assert (released / "work" / "04_slices_and_bias.ipynb").is_file()
    graded = run_cli("exercises", "grade", "04_slices_and_bias", cwd=released)
    assert graded.returncode == 2 and "need the instructor's checkout" in graded.stderr, graded.stderr


def test_a_release_that_would_leak_a_hidden_check_fails_and_is_removed(tmp_path):
    exercises = discover()
    leaked = next(line for name, line in secret_lines(exercises) if name == "03_data_checks" and "assert" in line)
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    (root / "pipeline.yaml").write_text("steps: []\n")
    (root / "notebooks" / "notes.py").write_text(f"# copied from the instructor's notebook\n{leaked}\n")
    out = tmp_path / "students"
    with pytest.raises(LeakError, match=r"notes\.py: .* \(a hidden check of 03_data_checks\)"):
        release(root, out, exercises)
    assert not out.exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.txt").write_text("last term's release")
    refused = run_cli("exercises", "release", "--out", str(tmp_path / "full"))
    assert refused.returncode == 2 and "is not empty" in refused.stderr, refused.stderr
    (out / "exercises").mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / "03_data_checks.ipynb", out / "exercises" / "copied.ipynb")
    assert {leak.exercise for leak in scan(out, exercises)} >= {"03_data_checks"}
    assert any("tagged hidden-checks" in leak.what for leak in scan(out, exercises))


# ---- checks need messages -----------------------------------------------------------------------------------------


def test_check_refuses_an_assert_without_a_message(tmp_path):
    solution = read("solutions", "03_data_checks")
    cell = next(c for c in solution.cells if c.id == "hidden3")
    cell.source += "\nassert len(_problems) == 1"
    (tmp_path / "solutions").mkdir()
    nbformat.write(solution, tmp_path / "solutions" / "03_data_checks.ipynb")
    folders = ["--solutions", str(tmp_path / "solutions"), "--exercises", str(tmp_path / "exercises")]
    assert run_cli("exercises", "build", *folders).returncode == 0
    result = run_cli("exercises", "check", "--no-run", *folders)
    assert result.returncode == 1, result.stdout
    line = len(cell.source.splitlines())
    index = solution.cells.index(cell)
    assert (
        f"03_data_checks, cell {index} (hidden3), line {line}: an assert without a message (assert len(_problems) == 1)"
        in result.stdout
    ), result.stdout


def test_every_committed_check_has_messages():
    result = run_cli("exercises", "check", "--no-run")
    assert result.returncode == 0, result.stdout
    assert "without a message" not in result.stdout


# ---- feedback a student can act on --------------------------------------------------------------------------------


def test_plain_values_replace_numpy_and_pandas_reprs():
    assert plain([np.str_("virginica"), np.int64(3)]) == ["virginica", 3] and shown(np.float64(0.5)) == "0.5"
    assert plain(pd.Series([0.8, 1.25], index=["Female", "Male"])) == {"Female": 0.8, "Male": 1.25}
    assert plain(pd.DataFrame({"count": [2, 3]})) == [{"count": 2}, {"count": 3}]
    assert plain(np.arange(3)) == [0, 1, 2] and plain(pd.Series(["a"])) == ["a"]
    long = shown(list(range(1000)))
    assert long.startswith("[0, 1, 2") and long.endswith("more characters)") and len(long) < LIMIT + 40
    assert f"{brief(np.float64(0.91234)):.2f}" == "0.91" and f"{brief(list(range(1000)))!r}".startswith("[0, 1")


def test_asserts_are_rewritten_on_their_own_lines_and_explain_a_failure():
    source = (
        "# Check: x\n_p = [np.str_('a')]\nfor _i in range(1):\n"
        "    assert len(_p) == 1 and _p[0] == 'b', f'got {_p}'  # two parts\n"
        "x = 1; assert x\nassert (\n    x >= 2\n), 'x is too small'\n"
    )
    rewritten = explain_asserts(source)
    assert len(rewritten.splitlines()) == len(source.splitlines())
    assert rewritten.splitlines()[4] == "x = 1; assert x"  # shares its line: left as written
    with pytest.raises(AssertionError) as failed:
        exec(rewritten, {"np": np})
    assert str(failed.value) == "got ['a']\nexpected: 'b'\nfound:    'a'"
    with pytest.raises(AssertionError) as failed:
        exec(rewritten.replace("'b'", "'a'"), {"np": np})
    assert str(failed.value) == "x is too small\nexpected: >= 2\nfound:    1"
    assert explain(["x"], ["x"], "==", []) == "expected: []\nfound:    ['x']"  # `assert x == [], x` says x once
    assert explain("return a bool", np.True_, "is", True).endswith("found:    True (a numpy.bool)")


@pytest.fixture(scope="module")
def wrong_bounds(tmp_path_factory):
    """Exercise 04 done right except `<` for `<=` (and `>` for `>=`) in passes_rule, graded."""
    name = "04_slices_and_bias"
    solution = read("solutions", name)
    part2 = next(c for c in solution.cells if c.id == "part2").source
    wrong = part2.replace("(ratios >= low) & (ratios <= high)", "(ratios > low) & (ratios < high)")
    assert wrong != part2
    student = solved(read("exercises", name), solution, {"part2": wrong})
    path = tmp_path_factory.mktemp("student") / f"{name}.ipynb"
    nbformat.write(student, path)
    return grade_notebook(path, name, solution, cell_timeout=60, total_timeout=240)


def test_a_wrong_bound_shows_expected_and_found(wrong_bounds):
    failed = {c.name: c for c in wrong_bounds.checks if not c.passed}
    check = failed["the reference group's ratio is 1, and the rule's bounds are included"]
    assert check.message == (
        "AssertionError: ratios of exactly 0.8 and 1.25 pass: the bounds are included\nexpected: True\nfound:    False"
    )
    assert (
        check.line == "assert passes_rule(pd.Series([0.8, 1.0, 1.25])) is True, "
        '"ratios of exactly 0.8 and 1.25 pass: the bounds are included"'
    )
    assert not any("np." in c.message or "dtype" in c.message for c in wrong_bounds.checks)
    text = wrong_bounds.to_text().splitlines()
    row = next(i for i, line in enumerate(text) if "the rule's bounds are included" in line)
    assert text[row + 1] == "        expected: True" and text[row + 2] == "        found:    False"
