"""What the runner costs and saves on the default Iris pipeline, against its floor and its peers.

    python benchmarks/pipeline_overhead.py [--rounds N] [--only PART,...] [--quick] [--out FILE]

Parts (all but `sweep_papermill` and `dask` by default):
- labline          `labline run --force` on an empty runs folder (cold), from the shell;
- floor            the same code cells as one plain Python script, one process, no kernel;
- ploomber         ploomber-engine running the six notebooks one after the other in one process,
                   in its own virtual environment (benchmarks/ploomber_runner.py);
- papermill        the `papermill` command, one notebook after the other;
- sweep            `labline sweep train_torch` over 16 combinations (4 with --quick);
- sweep_papermill  the same 16 executions through the `papermill` command, one after the other;
- cached           `labline run` again with nothing changed, from the shell (and in process);
- dask             the sweep on a Dask LocalCluster with 1 worker, then 2.
An untimed `labline run` first gives the reference manifest: floor, ploomber and papermill replay
the parameters it gave each step, each step's folder moved to the replay's own, so every one of
them runs the same pipeline with the same values; the sweeps take their upstream from its cache.
The timed parts alternate (A B C A B C ...: `--rounds` of each) so that a change of load falls on
all of them; the load average is recorded before every round and part, medians are reported.
From labline's (and papermill's) executed notebooks, per notebook: kernel ready to first cell
(papermill's metadata: the notebook's start to its first cell's; labline's kernels are started
before papermill's notebook start, so for labline also the step's start to its first cell).
Prints a table (seconds, x over the floor) and writes benchmarks/results/pipeline_overhead.json
with the git commit, so figures can be read across commits.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import ploomber_runner  # noqa: E402

from runner.notebook import PARAMETERS_TAG, cell_tags, code_sources, read_json  # noqa: E402
from runner.scraps import read_scraps  # noqa: E402
from runner.translator import injected_source  # noqa: E402

BIN = Path(sys.executable).parent
QUICK = ["train_torch.epochs=60", "train_sklearn.cv_folds=3"]
SWEEP_STEP = "train_torch"
SWEEP_GRID = {"lr": ["0.003", "0.01", "0.03", "0.1"], "hidden_sizes": ["[8]", "[16]", "[32]", "[8,8]"]}
SWEEP_FIXED = {"epochs": "60"}  # short training: the sweep measures what each run costs around it
ROUND_PARTS = ("labline", "floor", "ploomber", "papermill", "sweep", "sweep_papermill")
ONCE_PARTS = ("cached", "dask")
DEFAULT_PARTS = ("labline", "floor", "ploomber", "papermill", "sweep", "cached")
OUT = ROOT / "benchmarks" / "results" / "pipeline_overhead.json"


@dataclass(frozen=True)
class ReplayStep:
    """One step as labline ran it, with its folder moved under another root."""

    name: str
    notebook: str
    output: str
    parameters: dict[str, Any]


@dataclass
class Bench:
    """What every part needs: where to work, how labline is called, the reference run."""

    work: Path
    overrides: list[str]
    quick: bool
    db: str
    reference_runs: Path | None = None
    reference: dict[str, Any] = field(default_factory=dict)
    ploomber_python: Path | None = None

    def labline(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "labline"), *args], cwd=ROOT, capture_output=True, text=True)

    def run_args(self, runs: Path) -> list[str]:
        return ["run", "--runs", str(runs), "--db", self.db, *(a for o in self.overrides for a in ("-p", o))]

    def grid(self) -> dict[str, list[str]]:
        return {k: v[:2] for k, v in SWEEP_GRID.items()} if self.quick else SWEEP_GRID


def check(result: subprocess.CompletedProcess, what: str) -> None:
    if result.returncode != 0:
        raise SystemExit(f"{what} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")


def timed(fn) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def latest_manifest(runs: Path) -> dict[str, Any]:
    """The manifest written last (run ids sort by the second only; two reruns can share one)."""
    manifests = [p / "manifest.json" for p in runs.iterdir() if (p / "manifest.json").exists()]
    if not manifests:
        raise SystemExit(f"no run in {runs}")
    return json.loads(max(manifests, key=lambda m: m.stat().st_mtime_ns).read_text())


def replay_plan(manifest: dict[str, Any], folder: Path) -> list[ReplayStep]:
    """Each step's resolved parameters from the manifest, paths into its run folder moved to `folder`."""
    moved = {
        body["parameters"]["output_dir"]: str(folder / name / "artifacts") for name, body in manifest["steps"].items()
    }

    def move(value: Any) -> Any:
        for old, new in moved.items():
            if isinstance(value, str) and (value == old or value.startswith(old + os.sep)):
                return new + value[len(old) :]
        return value

    return [
        ReplayStep(
            name,
            body["notebook"],
            str(folder / name / Path(body["notebook"]).name),
            {k: move(v) for k, v in body["parameters"].items()},
        )
        for name, body in manifest["steps"].items()
    ]


def papermill_times(notebook: str | Path) -> tuple[datetime | None, datetime | None]:
    """papermill's start of the notebook and of its first cell, from the executed notebook's metadata."""
    nb = read_json(notebook)
    start = (nb.get("metadata", {}).get("papermill") or {}).get("start_time")
    cells = (c["metadata"]["papermill"] for c in nb["cells"] if "papermill" in c.get("metadata", {}))
    first = next((c.get("start_time") for c in cells), None)
    return (datetime.fromisoformat(start) if start else None), (datetime.fromisoformat(first) if first else None)


def kernel_to_first_cell(notebook: str | Path) -> float | None:
    """Seconds from the notebook's start to its first cell's: papermill's engine starts the kernel in
    between; an engine with a kernel already started shows only what remains."""
    start, first = papermill_times(notebook)
    return (first - start).total_seconds() if start and first else None


def step_to_first_cell(step: dict[str, Any]) -> float | None:
    """Seconds from the runner starting a step (its manifest's `started`) to the notebook's first cell:
    what the step waits for a kernel, plus papermill's set-up."""
    _, first = papermill_times(step["output_notebook"])
    return first.timestamp() - step["started"] if first and step.get("started") else None


def papermill(notebook: str, output: str, parameters: dict[str, Any]) -> tuple[float, float | None]:
    """One notebook through the `papermill` command on the kernel it declares: seconds, kernel-to-first-cell."""
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    params_file = Path(output).with_suffix(".parameters.json")
    params_file.write_text(json.dumps(parameters))  # YAML is a superset of JSON
    command = [str(BIN / "papermill"), notebook, output, "-f", str(params_file), "--cwd", str(ROOT)]
    seconds, result = timed(lambda: subprocess.run([*command, "--no-progress-bar"], capture_output=True, text=True))
    check(result, f"papermill {notebook}")
    return seconds, kernel_to_first_cell(output)


def reference_run(bench: Bench) -> None:
    """One untimed `labline run`: the parameters every replay uses, the sweep's upstream, the cached reruns'
    runs folder; it also brings the project and its libraries into the page cache before any part is timed."""
    runs = bench.work / "reference" / "runs"
    check(bench.labline(*bench.run_args(runs)), "labline run (reference)")
    bench.reference_runs, bench.reference = runs, latest_manifest(runs)


def part_labline(bench: Bench, folder: Path) -> dict[str, Any]:
    """Cold `labline run --force` on an empty runs folder."""
    runs = folder / "runs"
    seconds, result = timed(lambda: bench.labline(*bench.run_args(runs), "--force"))
    check(result, "labline run")
    steps = latest_manifest(runs)["steps"]
    return {
        "seconds": seconds,
        "step_seconds": {n: b.get("seconds") for n, b in steps.items()},
        "kernel_to_first_cell": {n: kernel_to_first_cell(b["output_notebook"]) for n, b in steps.items()},
        "step_start_to_first_cell": {n: step_to_first_cell(b) for n, b in steps.items()},
    }


def floor_script(plan: list[ReplayStep], folder: Path) -> Path:
    """Every step's code cells, parameters injected after the parameters cell, exec()'d in one process."""
    parts = [
        "import os, sys",
        "os.environ.setdefault('MPLBACKEND', 'Agg')",
        "from IPython.display import display  # a builtin inside notebooks",
    ]
    for step in plan:
        nb = read_json(step.notebook)
        cells = [c for c in nb["cells"] if c.get("cell_type") == "code"]
        sources = code_sources(nb)
        index = next((i for i, c in enumerate(cells) if PARAMETERS_TAG in cell_tags(c)), None)
        if index is not None:
            sources.insert(index + 1, injected_source(step.parameters))
        code = "\n".join(
            line for src in sources for line in src.splitlines() if not line.lstrip().startswith(("%", "!"))
        )
        parts.append(f"exec(compile({code!r}, {step.name!r}, 'exec'), {{'__name__': '__main__', 'display': display}})")
    script = folder / "floor.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text("\n".join(parts) + "\n")
    return script


def part_floor(bench: Bench, folder: Path) -> dict[str, Any]:
    script = floor_script(replay_plan(bench.reference, folder), folder)
    seconds, result = timed(
        lambda: subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True)
    )
    check(result, "floor script")
    return {"seconds": seconds}


def part_ploomber(bench: Bench, folder: Path) -> dict[str, Any]:
    """ploomber-engine in its own environment; the whole child process timed, its per-notebook times kept."""
    steps = replay_plan(bench.reference, folder)
    plan = {"cwd": str(ROOT), "steps": [vars(s) for s in steps]}
    result = ploomber_runner.run_plan(bench.ploomber_python, plan, folder, pythonpath=ROOT)
    return {
        "seconds": result["seconds_with_process"],
        "seconds_in_process": result["seconds"],
        "step_seconds": {n: s["seconds"] for n, s in result["steps"].items()},
        "glue_warnings": {n: s["glue_warnings"] for n, s in result["steps"].items()},
        "scraps_missing": {s.name: scraps_missing(bench.reference, s) for s in steps},
        "version": result["version"],
    }


def scraps_missing(reference: dict[str, Any], step: ReplayStep) -> list[str]:
    """The scraps labline's run of this step glued that the replay's output notebook lacks."""
    kept = read_scraps(step.output)
    return sorted(set(reference["steps"][step.name].get("scraps") or {}) - set(kept))


def part_papermill(bench: Bench, folder: Path) -> dict[str, Any]:
    steps = {s.name: papermill(s.notebook, s.output, s.parameters) for s in replay_plan(bench.reference, folder)}
    return {
        "seconds": sum(seconds for seconds, _ in steps.values()),
        "step_seconds": {n: seconds for n, (seconds, _) in steps.items()},
        "kernel_to_first_cell": {n: first for n, (_, first) in steps.items()},
    }


def sweep_runs(bench: Bench, folder: Path) -> Path:
    """A runs folder holding only the reference run's manifest, so the sweep finds its upstream cached."""
    runs = folder / "runs"
    seed = runs / bench.reference["run_id"]
    seed.mkdir(parents=True)
    shutil.copy(bench.reference_runs / bench.reference["run_id"] / "manifest.json", seed / "manifest.json")
    return runs


def part_sweep(bench: Bench, folder: Path, *executor: str) -> dict[str, Any]:
    """`labline sweep` from the shell; its upstream must come from the cache, or the time would include it."""
    grid = bench.grid()
    runs = sweep_runs(bench, folder)
    args = ["sweep", SWEEP_STEP, "--runs", str(runs), "--format", "json", *executor]
    args += [a for k, v in grid.items() for a in ("-p", f"{k}={','.join(v)}")]
    args += [a for k, v in SWEEP_FIXED.items() for a in ("--set", f"{SWEEP_STEP}.{k}={v}")]
    seconds, result = timed(lambda: bench.labline(*args))
    check(result, "labline sweep")
    rows = json.loads(result.stdout)
    expected = len(combinations(grid))
    if len(rows) != expected or any(r["status"] != "succeeded" for r in rows):
        raise SystemExit(f"labline sweep: expected {expected} succeeded runs, got {rows}")
    upstream = {
        f"{m.parent.name}/{name}": body["status"]
        for m in runs.glob("*/manifest.json")
        if m.parent.name != bench.reference["run_id"]
        for name, body in json.loads(m.read_text())["steps"].items()
        if name != SWEEP_STEP and body["status"] != "cached"
    }
    if upstream:
        raise SystemExit(f"labline sweep executed upstream steps instead of taking them from the cache: {upstream}")
    return {"seconds": seconds, "runs": len(rows)}


def combinations(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def part_sweep_papermill(bench: Bench, folder: Path) -> dict[str, Any]:
    """The sweep's executions through the `papermill` command, one after the other, upstream from the reference run."""
    base = bench.reference["steps"][SWEEP_STEP]
    took = []
    for number, combo in enumerate(combinations(bench.grid())):
        output = folder / f"{number:02d}" / Path(base["notebook"]).name
        values = {k: json.loads(v) for k, v in {**combo, **SWEEP_FIXED}.items()}
        params = {**base["parameters"], **values, "output_dir": str(output.parent / "artifacts")}
        took.append(papermill(base["notebook"], str(output), params)[0])
    return {"seconds": sum(took), "runs": len(took)}


PART_FUNCTIONS = {
    "labline": part_labline,
    "floor": part_floor,
    "ploomber": part_ploomber,
    "papermill": part_papermill,
    "sweep": part_sweep,
    "sweep_papermill": part_sweep_papermill,
}


def run_rounds(bench: Bench, parts: list[str], rounds: int) -> list[dict[str, Any]]:
    """Every timed part once per round, in the same order each round; each on a fresh folder."""
    done = []
    for number in range(1, rounds + 1):
        entry: dict[str, Any] = {"round": number, "load_average_before": os.getloadavg(), "parts": {}}
        for part in (p for p in ROUND_PARTS if p in parts):
            print(f"round {number}/{rounds}: {part} ...", flush=True)
            load = os.getloadavg()
            outcome = PART_FUNCTIONS[part](bench, bench.work / f"r{number}-{part}")
            entry["parts"][part] = {"load_average_before": load, **outcome}
            print(f"  {outcome['seconds']:.2f} s  (load {load[0]:.2f})", flush=True)
        done.append(entry)
    return done


def part_cached(bench: Bench, times: int) -> dict[str, Any]:
    """`labline run` with nothing changed, from the shell `times` times, then in this process."""
    shell = []
    for _ in range(times):
        seconds, result = timed(lambda: bench.labline(*bench.run_args(bench.reference_runs)))
        check(result, "labline run (nothing changed)")
        statuses = {b["status"] for b in latest_manifest(bench.reference_runs)["steps"].values()}
        if statuses != {"cached"}:
            raise SystemExit(f"labline run with nothing changed executed steps: {statuses}")
        shell.append(seconds)
    from runner.pipeline import run_pipeline
    from runner.spec import load_pipeline

    spec = load_pipeline(ROOT / "pipeline.yaml")
    run_pipeline(spec, bench.reference_runs, overrides=bench.overrides)  # the API may see a step differently
    in_process, _ = timed(lambda: run_pipeline(spec, bench.reference_runs, overrides=bench.overrides))
    startup, _ = timed(lambda: bench.labline("--version"))
    return {
        "command": shell,
        "command_median": statistics.median(shell),
        "in_process": in_process,
        "cli_startup": startup,
    }


def part_dask(bench: Bench) -> dict[str, float]:
    return {
        f"{workers}_worker": part_sweep(
            bench, bench.work / f"dask{workers}", "--executor", "dask", "--workers", str(workers)
        )["seconds"]
        for workers in (1, 2)
    }


def git_commit() -> dict[str, Any]:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True)
    return {"commit": head, "tracked_files_changed": bool(changed.stdout.strip())}


def _step_medians(outcomes: list[dict[str, Any]], measure: str) -> dict[str, float]:
    """Per step, the median over rounds of `measure` (rounds where it could not be read left out)."""
    values: dict[str, list[float]] = {}
    for outcome in outcomes:
        for step, value in outcome[measure].items():
            if value is not None:
                values.setdefault(step, []).append(value)
    return {step: statistics.median(v) for step, v in values.items()}


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds: seconds per part, x over the floor, kernel-to-first-cell per notebook."""
    per_part: dict[str, list[dict]] = {}
    for entry in rounds:
        for part, outcome in entry["parts"].items():
            per_part.setdefault(part, []).append(outcome)
    seconds = {part: statistics.median(o["seconds"] for o in outcomes) for part, outcomes in per_part.items()}
    summary: dict[str, Any] = {
        "seconds": seconds,
        "per_round": {p: [o["seconds"] for o in v] for p, v in per_part.items()},
    }
    if "floor" in seconds:
        summary["over_floor"] = {p: s / seconds["floor"] for p, s in seconds.items() if p in ROUND_PARTS[:4]}
    if "sweep" in seconds and "sweep_papermill" in seconds:
        summary["sweep_papermill_over_labline"] = seconds["sweep_papermill"] / seconds["sweep"]
    summary["first_cell_median"] = {
        f"{part} {measure}": _step_medians(per_part[part], measure)
        for part in ("labline", "papermill")
        for measure in ("kernel_to_first_cell", "step_start_to_first_cell")
        if part in per_part and measure in per_part[part][0]
    }
    if "ploomber" in per_part:
        last = per_part["ploomber"][-1]
        summary["ploomber_scrapbook"] = {"no_kernel_warnings": last["glue_warnings"], "missing": last["scraps_missing"]}
    return summary


def print_table(results: dict[str, Any]) -> None:
    summary = results["summary"]
    floor = summary["seconds"].get("floor")
    print(f"\n{'part':18} {'median s':>9} {'x floor':>8}  rounds")
    for part, value in summary["seconds"].items():
        ratio = f"{value / floor:8.2f}" if floor and part in ROUND_PARTS[:4] else " " * 8
        rounds = " / ".join(f"{v:.1f}" for v in summary["per_round"][part])
        print(f"{part:18} {value:9.2f} {ratio}  {rounds}")
    if "sweep_papermill_over_labline" in summary:
        print(f"sweep: papermill loop / labline sweep = {summary['sweep_papermill_over_labline']:.2f}x")
    for measure, steps in summary["first_cell_median"].items():
        print(f"{measure}: " + ", ".join(f"{s} {v:.2f} s" for s, v in steps.items()))
    if "ploomber_scrapbook" in summary:
        scrapbook = summary["ploomber_scrapbook"]
        print(f"ploomber-engine: scrapbook's no-kernel warnings per notebook {scrapbook['no_kernel_warnings']}")
        print(f"ploomber-engine: scraps labline glued that its notebooks lack {scrapbook['missing']}")
    cached = results.get("cached")
    if cached:
        print(
            f"labline run, nothing changed: {cached['command_median']:.2f} s from the shell "
            f"(median of {len(cached['command'])}), {cached['in_process']:.3f} s in process, "
            f"CLI startup {cached['cli_startup']:.2f} s"
        )
    if results.get("dask"):
        print("dask sweep: " + ", ".join(f"{k} {v:.1f} s" for k, v in results["dask"].items()))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the timed parts, alternating (3)")
    parser.add_argument(
        "--only", default=",".join(DEFAULT_PARTS), help=f"comma-separated parts of {ROUND_PARTS + ONCE_PARTS}"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run: {' '.join(QUICK)}, a 4-run sweep, 2 cached reruns"
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the JSON goes ({OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(args.parts) - set(ROUND_PARTS + ONCE_PARTS))
    if unknown or not args.parts:
        parser.error(
            f"--only: unknown part(s) {unknown or args.only!r}; expected some of {', '.join(ROUND_PARTS + ONCE_PARTS)}"
        )
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pipeline-overhead-"))
    bench = Bench(work, QUICK if args.quick else [], args.quick, f"sqlite:///{work}/labline.db")
    results: dict[str, Any] = {
        **git_commit(),
        "command": sys.argv if argv is None else argv,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "load_average_at_start": os.getloadavg()},
        "overrides": bench.overrides,
        "parts": args.parts,
        "sweep": {"step": SWEEP_STEP, "grid": bench.grid(), "fixed": SWEEP_FIXED},
    }
    try:
        print("reference run (labline run, untimed) ...", flush=True)
        reference_run(bench)
        if "ploomber" in args.parts:
            bench.ploomber_python = ploomber_runner.ensure_environment(ROOT / "requirements.lock")
        results["rounds"] = run_rounds(bench, args.parts, args.rounds)
        if "cached" in args.parts:
            print("labline run, nothing changed ...", flush=True)
            results["cached"] = part_cached(bench, 2 if args.quick else 5)
        if "dask" in args.parts:
            print("sweep on Dask, 1 worker then 2 ...", flush=True)
            results["dask"] = part_dask(bench)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["summary"] = summarize(results["rounds"])
    results["machine"]["load_average_at_end"] = os.getloadavg()
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
