"""What the runner costs and saves, on the default Iris pipeline, all in this one process.

    python benchmarks/pipeline_overhead.py [--quick] [--no-dask]

1. `papermill` (the command line), one notebook after the other: what users do without labline.
2. `labline run`, cold (empty runs folder): every step still one `papermill.execute_notebook`,
   in parallel, on prestarted and warmed kernels.
   1 and 2 alternate (ABAB, `--rounds` of each, 3 by default) so that a change of load on a
   shared machine falls on both; the medians and their ratio are reported.
3. `labline run` again with nothing changed (the command, median of `--rounds`, and
   `run_pipeline` in this process).
4. The floor: the same code cells as one plain Python script (no kernels, no notebooks).
5. A sweep of 8 `train_torch` runs on a Dask LocalCluster with 1 worker, then with 2.

Prints every time and the ratios, and writes them to benchmarks/results/pipeline_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner.notebook import PARAMETERS_TAG, cell_tags, code_sources, injected_source, read_json  # noqa: E402
from runner.plan import resolve_references, step_parameters  # noqa: E402
from runner.scraps import read_scraps  # noqa: E402
from runner.spec import load_pipeline  # noqa: E402

BIN = Path(sys.executable).parent
QUICK = ["train_torch.epochs=60", "train_sklearn.cv_folds=3"]
SWEEP = {"lr": [0.003, 0.01, 0.03, 0.1], "hidden_sizes": [[8], [16]]}


def timed(fn):
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    print(f"  {seconds:.2f} s", flush=True)
    return seconds, result


def check(result: subprocess.CompletedProcess, what: str) -> None:
    if result.returncode != 0:
        raise SystemExit(f"{what} failed ({result.returncode}):\n{result.stderr[-3000:]}")


def sequential_papermill(spec, overrides, folder: Path) -> float:
    """Each notebook through the papermill command, upstream scraps turned into parameters."""
    params = step_parameters(spec, overrides)
    scraps: dict[str, dict] = {}
    total = 0.0
    for name in spec.order():
        step = spec.steps[name]
        values = resolve_references(params[name], scraps)
        values["output_dir"] = str(folder / name / "artifacts")
        params_file = folder / f"{name}.json"
        params_file.parent.mkdir(parents=True, exist_ok=True)
        params_file.write_text(json.dumps(values))  # YAML is a superset of JSON
        output = folder / name / step.notebook.name
        output.parent.mkdir(parents=True, exist_ok=True)
        command = [
            str(BIN / "papermill"),
            str(step.notebook),
            str(output),
            "-f",
            str(params_file),
            "--cwd",
            str(spec.root),
            "--no-progress-bar",
        ]  # the kernel each notebook declares
        seconds, result = timed(lambda command=command: subprocess.run(command, capture_output=True, text=True))
        check(result, f"papermill {name}")
        total += seconds
        scraps[name] = read_scraps(output)
        print(f"  papermill {name:14} {seconds:6.1f} s", flush=True)
    return total


def labline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "labline"), *args], cwd=ROOT, capture_output=True, text=True)


def floor_script(manifest: dict, folder: Path) -> Path:
    """Every step's code cells, parameters first, run with exec() in one Python process."""
    parts = [
        "import os, sys",
        "os.environ.setdefault('MPLBACKEND', 'Agg')",
        "from IPython.display import display  # a builtin inside notebooks",
    ]
    for name, body in manifest["steps"].items():
        nb = read_json(body["notebook"])
        params = dict(body["parameters"], output_dir=str(folder / name / "artifacts"))
        cells = [c for c in nb["cells"] if c.get("cell_type") == "code"]
        parameters_cell = next((c for c in cells if PARAMETERS_TAG in cell_tags(c)), None)
        sources = code_sources(nb)
        if parameters_cell is not None:
            index = [c for c in cells].index(parameters_cell)
            sources.insert(index + 1, injected_source(params))
        code = "\n".join(
            line for src in sources for line in src.splitlines() if not line.lstrip().startswith(("%", "!"))
        )
        parts.append(f"exec(compile({code!r}, {name!r}, 'exec'), {{'__name__': '__main__', 'display': display}})")
    script = folder / "floor.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text("\n".join(parts) + "\n")
    return script


def dask_sweep(spec, runs: Path, seed_run: Path, workers: int, overrides) -> float:
    from runner.executors import make_executor
    from runner.sweep import sweep

    runs.mkdir(parents=True)
    (runs / seed_run.name).mkdir()
    shutil.copy(seed_run / "manifest.json", runs / seed_run.name / "manifest.json")  # explore comes from cache
    with make_executor("dask", workers) as executor:
        seconds, records = timed(
            lambda: sweep(spec, runs, "train_torch", SWEEP, overrides=overrides, executor=executor)
        )
    failed = [r.run_id for r in records if r.manifest["status"] != "succeeded"]
    if failed:
        raise SystemExit(f"sweep runs failed: {failed}")
    return seconds


def alternate(spec, overrides, set_params, work: Path, runs: Path, rounds: int, results: dict):
    """Baseline and labline in turn (ABAB...), each on fresh folders; medians into `results`."""
    times: dict[str, list[float]] = {"papermill_sequential": [], "labline_run_cold": []}
    manifest, run_id = {}, ""
    for number in range(1, rounds + 1):
        print(f"round {number}/{rounds}: sequential papermill ...", flush=True)
        times["papermill_sequential"].append(sequential_papermill(spec, overrides, work / f"papermill{number}"))
        print(f"round {number}/{rounds}: labline run (cold) ...", flush=True)
        cold_runs = runs if number == rounds else work / f"runs{number}"
        took, result = timed(lambda cold_runs=cold_runs: labline("run", "--runs", str(cold_runs), *set_params))
        check(result, "labline run")
        times["labline_run_cold"].append(took)
        run_id = json.loads(labline("runs", "--runs", str(cold_runs), "--format", "json").stdout)[-1]["run_id"]
        manifest = json.loads((cold_runs / run_id / "manifest.json").read_text())
        results.setdefault("labline_step_seconds", []).append(
            {n: b.get("seconds") for n, b in manifest["steps"].items()}
        )
    results["rounds"] = times
    for name, values in times.items():
        results["seconds"][name] = statistics.median(values)
    return manifest, run_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"smaller parameters: {' '.join(QUICK)}")
    parser.add_argument("--no-dask", action="store_true", help="leave out the Dask sweep")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of baseline and labline, alternating (3)")
    args = parser.parse_args(argv)
    overrides = QUICK if args.quick else []
    spec = load_pipeline(ROOT / "pipeline.yaml")
    work = Path(tempfile.mkdtemp(prefix="pipeline-overhead-"))
    runs = work / "runs"
    set_params = [a for o in overrides for a in ("-p", o)]
    results: dict = {
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "load_average_at_start": os.getloadavg()},
        "overrides": overrides,
        "seconds": {},
    }
    seconds = results["seconds"]
    try:
        manifest, run_id = alternate(spec, overrides, set_params, work, runs, args.rounds, results)

        print("labline run (nothing changed) ...", flush=True)
        unchanged = []
        for _ in range(args.rounds):
            took, result = timed(lambda: labline("run", "--runs", str(runs), *set_params))
            check(result, "labline run (again)")
            unchanged.append(took)
        results["rounds"]["labline_run_unchanged_command"] = unchanged
        seconds["labline_run_unchanged_command"] = statistics.median(unchanged)
        from runner.pipeline import run_pipeline

        # The command may pass parameters of its own (per data set): one untimed in-process run
        # first brings any step the Python API sees differently into the cache.
        run_pipeline(spec, runs, overrides=overrides)
        seconds["labline_run_unchanged_in_process"], record = timed(
            lambda: run_pipeline(spec, runs, overrides=overrides)
        )
        assert {b["status"] for b in record.manifest["steps"].values()} == {"cached"}, record.manifest
        seconds["labline_command_startup"], _ = timed(lambda: labline("--version"))

        print("plain Python script (the floor) ...", flush=True)
        script = floor_script(manifest, work / "floor")
        seconds["plain_python_floor"], result = timed(
            lambda: subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True)
        )
        check(result, "floor script")

        if not args.no_dask:
            sweep_overrides = ["train_torch.epochs=60"]
            for workers in (1, 2):
                print(f"sweep of 8 train_torch runs on a Dask LocalCluster, {workers} worker(s) ...", flush=True)
                seconds[f"dask_sweep_8_runs_{workers}_worker"] = dask_sweep(
                    spec, work / f"sweep{workers}", runs / run_id, workers, sweep_overrides
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ratios = {
        "papermill_over_labline_cold": seconds["papermill_sequential"] / seconds["labline_run_cold"],
        "papermill_over_labline_cold_per_round": [
            a / b for a, b in zip(results["rounds"]["papermill_sequential"], results["rounds"]["labline_run_cold"])
        ],
        "labline_cold_over_floor": seconds["labline_run_cold"] / seconds["plain_python_floor"],
        "papermill_over_floor": seconds["papermill_sequential"] / seconds["plain_python_floor"],
    }
    if "dask_sweep_8_runs_2_worker" in seconds:
        ratios["dask_sweep_1_worker_over_2_workers"] = (
            seconds["dask_sweep_8_runs_1_worker"] / seconds["dask_sweep_8_runs_2_worker"]
        )
    results["ratios"] = ratios
    results["machine"]["load_average_at_end"] = os.getloadavg()
    for name, value in seconds.items():
        print(f"{name:40} {value:8.2f} s")
    for name, value in ratios.items():
        print(
            f"{name:40} " + (" ".join(f"{v:.2f}" for v in value) if isinstance(value, list) else f"{value:8.2f}") + " x"
        )
    out = ROOT / "benchmarks" / "results" / "pipeline_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
