"""How long `labline report` takes on the default Iris run, against converting the run's notebooks
with the `jupyter nbconvert --to html` command one after the other (what a user does without it).

    python benchmarks/report_speed.py [--run RUN_FOLDER] [--rounds 3]

Without --run, the default pipeline runs first into a temporary folder (cached steps would make
no difference: a report reads the same manifest and notebooks either way). Baseline and labline
alternate (ABAB), so a change of load on a shared machine falls on both; medians are reported.
Measured, each as a fresh process as a user runs it:
1. `jupyter nbconvert --to html` of each executed notebook, one by one (the baseline: HTML of the
   notebooks only, no DAG, comparison, plots or model cards);
2. `labline report RUN` with the notebooks embedded (the default), and with `--notebooks none`;
3. in this process, the page rendered again with nbconvert already imported (the warm cost).
Prints the times and ratios, writes them to benchmarks/results/report_speed.json. Aim: < 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BIN = Path(sys.executable).parent
AIM_SECONDS = 3.0


def seconds_of(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def default_run(folder: Path) -> Path:
    from labline.env import run_metadata
    from runner.pipeline import run_pipeline
    from runner.spec import load_pipeline

    print("running the default pipeline first ...", flush=True)
    record = run_pipeline(
        load_pipeline(ROOT / "pipeline.yaml"), folder / "runs", metadata={"dataset": "iris", **run_metadata(ROOT)}
    )
    return record.path


def baseline(notebooks: list[Path], out: Path) -> float:
    """`jupyter nbconvert --to html` once per notebook, as a user would in a shell loop."""
    total = 0.0
    for index, notebook in enumerate(notebooks):
        total += seconds_of(
            [
                str(BIN / "jupyter"),
                "nbconvert",
                "--to",
                "html",
                "--output-dir",
                str(out),
                "--output",
                f"{index}-{notebook.stem}",
                str(notebook),
            ],
            ROOT,
        )
    return total


def warm_render(run: Path, manifest: dict) -> float:
    from labline.report import render_report

    render_report([(run, manifest)])  # imports nbconvert and compiles its templates
    started = time.perf_counter()
    render_report([(run, manifest)])
    return time.perf_counter() - started


def measure(run: Path, rounds: int) -> dict:
    manifest = json.loads((run / "manifest.json").read_text())
    notebooks = [Path(b["output_notebook"]) for b in manifest["steps"].values() if b.get("output_notebook")]
    times: dict[str, list[float]] = {"nbconvert_command": [], "labline_report": [], "labline_report_no_notebooks": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for r in range(rounds):
            times["nbconvert_command"].append(baseline(notebooks, out))
            times["labline_report"].append(
                seconds_of([str(BIN / "labline"), "report", str(run), "--out", str(out / f"r{r}.html")], ROOT)
            )
            times["labline_report_no_notebooks"].append(
                seconds_of(
                    [str(BIN / "labline"), "report", str(run), "--notebooks", "none", "--out", str(out / "n.html")],
                    ROOT,
                )
            )
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
        size = (out / "r0.html").stat().st_size
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {
        "notebooks": len(notebooks),
        "rounds": rounds,
        "times": times,
        "median_seconds": medians,
        "warm_render_seconds": warm_render(run, manifest),
        "page_bytes": size,
        "ratio_nbconvert_over_report": medians["nbconvert_command"] / medians["labline_report"],
        "aim_seconds": AIM_SECONDS,
        "meets_aim": medians["labline_report"] < AIM_SECONDS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="a finished run folder (default: run the pipeline)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("LABLINE_DB", f"sqlite:///{tmp}/labline.db")
        run = args.run.resolve() if args.run else default_run(Path(tmp))
        result = measure(run, args.rounds)
    m = result["median_seconds"]
    print(f"\n{result['notebooks']} notebooks, medians of {result['rounds']} rounds:")
    print(f"  jupyter nbconvert --to html, one by one: {m['nbconvert_command']:.2f} s (notebooks only)")
    print(
        f"  labline report (notebooks embedded):     {m['labline_report']:.2f} s "
        f"({result['ratio_nbconvert_over_report']:.1f}x faster; aim < {AIM_SECONDS:.0f} s: "
        f"{'met' if result['meets_aim'] else 'NOT met'})"
    )
    print(f"  labline report --notebooks none:         {m['labline_report_no_notebooks']:.2f} s")
    print(
        f"  warm render in process:                  {result['warm_render_seconds']:.2f} s; "
        f"page {result['page_bytes'] / 1e6:.2f} MB"
    )
    result.update(
        machine=platform.platform(),
        cores=os.cpu_count(),
        python=platform.python_version(),
        measured=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    target = ROOT / "benchmarks" / "results" / "report_speed.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
