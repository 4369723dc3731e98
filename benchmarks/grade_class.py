"""Grading a class of planted submissions: labline's folder grading against a shell loop and nbgrader.

    python benchmarks/grade_class.py [--count 60] [--rounds 3] [--workers N] [--cell-timeout 10]
                                     [--parts labline,loop,nbgrader] [--out FILE]

The class: `--count` submissions of exercise 03 planted by `labline.exercises.planted` (correct,
one check wrong, a stub left, a syntax error, an infinite loop, os._exit, a 20 GiB allocation,
writes outside its folder, a renamed file, repeated), each with the score it must get.

- labline   `labline exercises grade FOLDER --force` (parallel, warm kernels, each confined);
- loop      a shell loop of the one-notebook command `labline exercises grade NB --json`;
- nbgrader  `nbgrader autograde` on the same submissions converted to nbgrader's layout
            (`submitted/<student>/ex03/03_data_checks.ipynb`) and cell metadata (solution cells,
            autograded test cells worth one point, hidden checks as hidden tests), in a virtual
            environment this script creates (`--nbgrader-venv`) with `pip install nbgrader`.
            Setting up the course (`generate_assignment`) is not timed; `export` is not either.

Neither the loop nor nbgrader caps memory or confines writes: their 20 GiB allocation succeeds
(it is never touched) and their write-outside submission writes; the folder it attacks is put back
before every part. Parts alternate (A B C A B C ...); the load average is recorded before each;
medians are reported with each part's scores checked against the planted key (mismatches listed).
Writes benchmarks/results/grade_class.json (or `--out`).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

from labline.exercises.planted import EXERCISE, LEFT_BEHIND, plant_class  # noqa: E402
from labline.exercises.template import CHECKS, HIDDEN_CHECKS, cell_tags  # noqa: E402

BIN = Path(sys.executable).parent
PARTS = ("labline", "loop", "nbgrader")
ASSIGNMENT = "ex03"
NBGRADER = "nbgrader==0.9.6"
OUT = ROOT / "benchmarks" / "results" / "grade_class.json"
_REGION = re.compile(r"^(\s*)#\s*(BEGIN|END) SOLUTION\b.*$")
_EXPRESSION = re.compile(r"^(\s*)(.*?)\s*#\s*SOLUTION\b.*$")


def restore_outside(outside: Path) -> None:
    """The folder the write-outside submission attacks, as it was (the loop and nbgrader do not protect it)."""
    shutil.rmtree(outside, ignore_errors=True)
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "notes.txt").write_text("an instructor's file")


def kill_left_behind() -> int:
    """Kill the `sleep` the crashing submission started in its own session (no grader but labline's does)."""
    import psutil

    killed = 0
    for process in psutil.process_iter(["cmdline"]):
        if process.info["cmdline"] and process.info["cmdline"][:2] == ["sleep", LEFT_BEHIND]:
            process.kill()
            killed += 1
    return killed


# ---- the three graders: each returns {notebook path: score} ---------------------------------------------------


def run_labline(folder: Path, work: Path, args) -> dict[str, int]:
    out = work / "labline-grades"
    limits = ["--cell-timeout", str(args.cell_timeout), "--timeout", str(args.timeout)]
    workers = ["--workers", str(args.workers)] if args.workers else []
    command = [str(BIN / "labline"), "exercises", "grade", str(folder), "--out", str(out), "--force", "--format"]
    subprocess.run(command + ["json", *limits, *workers], cwd=ROOT, capture_output=True, text=True, check=False)
    return {row["notebook"]: row["score"] for row in json.loads((out / "gradebook.json").read_text())}


def run_loop(folder: Path, work: Path, args) -> dict[str, int]:
    out = work / "loop-grades"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    script = (
        'i=0; find "$1" -name "*.ipynb" -print0 | while IFS= read -r -d "" nb; do i=$((i+1)); '
        f'"{BIN / "labline"}" exercises grade "$nb" --json --cell-timeout {args.cell_timeout} '
        f'--timeout {args.timeout} > "$2/$i.json"; done'
    )
    subprocess.run(["bash", "-c", script, "loop", str(folder), str(out)], cwd=ROOT, capture_output=True, check=False)
    scores = {}
    for path in out.glob("*.json"):
        try:
            report = json.loads(path.read_text())
            scores[report["notebook"]] = report["score"]
        except (ValueError, KeyError):
            continue
    return scores


# ---- nbgrader: its own environment, its course layout, its cell metadata ---------------------------------------


def nbgrader_venv(path: Path) -> Path:
    """The virtual environment with nbgrader, created when missing; its bin folder."""
    if not (path / "bin" / "nbgrader").exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(path / "bin" / "pip"), "install", "-q", NBGRADER], check=True)
    return path / "bin"


def nbgrader_source(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The solution with nbgrader's markup: solution cells, one-point test cells, hidden checks hidden."""
    source = copy.deepcopy(solution)
    for cell in source.cells:
        if cell.cell_type != "code":
            continue
        tags = cell_tags(cell)
        grade = {"schema_version": 3, "grade_id": cell.id, "locked": True, "task": False}
        if CHECKS in tags or HIDDEN_CHECKS in tags:
            cell.metadata["nbgrader"] = {**grade, "grade": True, "solution": False, "points": 1}
            if HIDDEN_CHECKS in tags:
                cell.source = f"### BEGIN HIDDEN TESTS\n{cell.source}\n### END HIDDEN TESTS"
        elif "SOLUTION" in cell.source:
            cell.metadata["nbgrader"] = {**grade, "grade": False, "solution": True, "locked": False}
            cell.source = "\n".join(_nbgrader_lines(cell.source))
        cell.metadata.pop("tags", None)
    return source


def _nbgrader_lines(source: str):
    for line in source.splitlines():
        region, expression = _REGION.match(line), _EXPRESSION.match(line)
        if region:
            yield f"{region[1]}### {region[2]} SOLUTION"
        elif expression:
            yield from (
                f"{expression[1]}### BEGIN SOLUTION",
                f"{expression[1]}{expression[2]}",
                f"{expression[1]}### END SOLUTION",
            )
        else:
            yield line


def nbgrader_course(course: Path, bin_dir: Path, args) -> Path:
    """A course with the exercise as assignment `ex03`, generated (released); the released notebook."""
    shutil.rmtree(course, ignore_errors=True)
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    solution = nbformat.read(ROOT / "solutions" / f"{EXERCISE}.ipynb", as_version=4)
    nbformat.write(nbgrader_source(solution), course / "source" / ASSIGNMENT / f"{EXERCISE}.ipynb")
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.course_id = 'labline-bench'\n"
        f"c.Execute.timeout = {int(args.cell_timeout)}\n"
        "c.Execute.interrupt_on_timeout = True\n"
    )
    run_nbgrader(bin_dir, course, "db", "assignment", "add", ASSIGNMENT)
    run_nbgrader(bin_dir, course, "generate_assignment", ASSIGNMENT, "--force", check=True)
    return course / "release" / ASSIGNMENT / f"{EXERCISE}.ipynb"


def run_nbgrader(bin_dir: Path, course: Path, *args: str, check: bool = False):
    env = {**os.environ, "JUPYTER_PATH": str(BIN.parent / "share" / "jupyter")}  # labline's kernel
    return subprocess.run(
        [str(bin_dir / "nbgrader"), *args], cwd=course, env=env, capture_output=True, text=True, check=check
    )


def nbgrader_submit(planted, released: Path, course: Path) -> dict[str, str]:
    """Each planted submission as nbgrader's student copy: the released notebook with the student's cells; the
    nbgrader student id of each notebook path."""
    shutil.rmtree(course / "submitted", ignore_errors=True)
    template = nbformat.read(released, as_version=4)
    students = {}
    for submission in planted:
        theirs = {c.id: c.source for c in nbformat.read(submission.path, as_version=4).cells if not cell_tags(c)}
        notebook = copy.deepcopy(template)
        for cell in notebook.cells:
            if cell.id in theirs and not cell.metadata.get("nbgrader", {}).get("grade"):
                cell.source = theirs[cell.id]
        student = re.sub(r"\W+", "_", submission.student)
        target = course / "submitted" / student / ASSIGNMENT / f"{EXERCISE}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(notebook, target)
        students[student] = str(submission.path)
    return students


def run_nbgrader_autograde(course: Path, bin_dir: Path) -> subprocess.CompletedProcess:
    shutil.rmtree(course / "autograded", ignore_errors=True)
    return run_nbgrader(bin_dir, course, "autograde", ASSIGNMENT, "--create", "--force")


def nbgrader_scores(course: Path, bin_dir: Path, students: dict[str, str]) -> dict[str, int]:
    run_nbgrader(bin_dir, course, "export", "--to", str(course / "grades.csv"))
    scores = {}
    with open(course / "grades.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["student_id"] in students:
                scores[students[row["student_id"]]] = round(float(row["raw_score"] or 0))
    return scores


# ---- rounds ------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="labline's --workers (default: its own)")
    parser.add_argument("--cell-timeout", type=float, default=10.0, help="every grader's per-cell limit")
    parser.add_argument("--timeout", type=float, default=120.0, help="labline's whole-notebook limit")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument(
        "--nbgrader-venv", type=Path, default=Path.home() / ".cache" / "labline-bench" / "nbgrader-venv"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part {', '.join(sorted(unknown))}; known: {', '.join(PARTS)}")

    work = Path(tempfile.mkdtemp(prefix="labline-grade-bench-"))
    folder, outside = work / "submissions", work / "outside"
    restore_outside(outside)
    planted = plant_class(folder, outside, ROOT / "solutions", ROOT / "exercises", count=args.count)
    key = {str(p.path): len(p.passed) for p in planted}
    notes, graders = (
        [],
        {"labline": lambda: run_labline(folder, work, args), "loop": lambda: run_loop(folder, work, args)},
    )
    if "nbgrader" in parts:
        try:
            bin_dir = nbgrader_venv(args.nbgrader_venv)
            course = work / "course"
            released = nbgrader_course(course, bin_dir, args)
            students = nbgrader_submit(planted, released, course)

            def nbgrader_part():
                done = run_nbgrader_autograde(course, bin_dir)
                if done.returncode:
                    notes.append(f"nbgrader autograde exited {done.returncode}: {done.stderr[-500:]}")
                return nbgrader_scores(course, bin_dir, students)

            graders["nbgrader"] = nbgrader_part
        except (subprocess.CalledProcessError, OSError) as exc:
            notes.append(f"nbgrader could not be set up ({exc}); its part is left out, the loop stays")
            parts.remove("nbgrader")

    seconds: dict[str, list[float]] = {p: [] for p in parts}
    loads: list[dict] = []
    mismatches: dict[str, dict] = {}
    for round_number in range(args.rounds):
        for part in parts:
            restore_outside(outside)
            loads.append({"round": round_number, "part": part, "load": os.getloadavg()})
            started = time.perf_counter()
            scores = graders[part]()
            seconds[part].append(time.perf_counter() - started)
            kill_left_behind()
            wrong = {nb: (scores.get(nb), expected) for nb, expected in key.items() if scores.get(nb) != expected}
            mismatches[part] = {Path(nb).relative_to(folder).as_posix(): v for nb, v in wrong.items()}
            print(f"round {round_number + 1} {part:<9} {seconds[part][-1]:7.1f} s  {len(wrong)} scores off the key")

    medians = {p: statistics.median(s) for p, s in seconds.items()}
    ratios = {p: medians[p] / medians["labline"] for p in parts if p != "labline" and "labline" in medians}
    print(f"\n{args.count} submissions, {args.rounds} rounds, load average now {os.getloadavg()[0]:.2f}")
    for part in parts:
        ratio = f"{ratios[part]:.2f}x labline's time" if part in ratios else ""
        print(f"  {part:<9} median {medians[part]:7.1f} s  {ratio}")
    for note in notes:
        print("note:", note)
    result = {
        "benchmark": "grade_class",
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "count": args.count,
        "rounds": args.rounds,
        "cell_timeout": args.cell_timeout,
        "seconds": seconds,
        "medians": medians,
        "ratios_to_labline": ratios,
        "scores_off_the_key": mismatches,
        "load_average": loads,
        "notes": notes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
