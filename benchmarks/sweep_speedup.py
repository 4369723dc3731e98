"""The same 16-run sweep on this checkout and on an earlier commit, alternating (ABAB), medians.

    .venv/bin/python benchmarks/sweep_speedup.py --before d21b5d9 --rounds 2

The earlier commit is checked out with `git worktree` into a temporary folder and run with this
checkout's virtual environment (its code first on PYTHONPATH), so only labline's code differs.
Each side first makes one untimed reference run, whose manifest seeds every timed sweep's runs
folder: the sweep's upstream steps come from the cache and only the 16 swept executions count.
Writes benchmarks/results/sweep_speedup.json with the load average before each sweep.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABLINE = ROOT / ".venv" / "bin" / "labline"
STEP = "train_torch"
GRID = ["-p", "lr=0.003,0.01,0.03,0.1", "-p", "hidden_sizes=[8],[16],[32],[8,8]"]
FIXED = ["--set", f"{STEP}.epochs=60"]
OUT = ROOT / "benchmarks" / "results" / "sweep_speedup.json"


def labline(tree: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    result = subprocess.run([str(LABLINE), *args], cwd=tree, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"labline {args[0]} in {tree} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result


def reference(tree: Path, work: Path) -> Path:
    """One untimed run; returns its manifest."""
    runs = work / "reference"
    labline(tree, "run", "--runs", str(runs), "--no-register")
    return next(runs.glob("*/manifest.json"))


def sweep(tree: Path, work: Path, manifest: Path, number: int) -> float:
    runs = work / f"sweep{number}"
    (runs / manifest.parent.name).mkdir(parents=True)
    shutil.copy(manifest, runs / manifest.parent.name / "manifest.json")
    started = time.perf_counter()
    labline(tree, "sweep", STEP, "--runs", str(runs), *GRID, *FIXED)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the earlier commit to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sweep-speedup-"))
    old = work / "before-tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(old), args.before], cwd=ROOT, check=True)
    try:
        sides = {"before": old, "now": ROOT}
        manifests = {name: reference(tree, work / name) for name, tree in sides.items()}
        seconds: dict[str, list[float]] = {name: [] for name in sides}
        loads: list[float] = []
        for number in range(args.rounds):
            for name, tree in sides.items():
                loads.append(os.getloadavg()[0])
                seconds[name].append(sweep(tree, work / name, manifests[name], number))
                print(f"round {number + 1} {name}: {seconds[name][-1]:.1f} s (load {loads[-1]:.2f})", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT)
        shutil.rmtree(work, ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    speedup = medians["before"] / medians["now"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    result = {
        "benchmark": "sweep_speedup",
        "sweep": f"labline sweep {STEP} {' '.join(GRID + FIXED)} (16 runs, upstream cached)",
        "before": args.before,
        "now": commit.stdout.strip(),
        "seconds": seconds,
        "medians": medians,
        "speedup": speedup,
        "load_average_before_each_sweep": loads,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"16-run sweep: before {medians['before']:.1f} s, now {medians['now']:.1f} s: {speedup:.2f}x faster")


if __name__ == "__main__":
    main()
