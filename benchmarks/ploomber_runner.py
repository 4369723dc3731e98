"""ploomber-engine as a peer: the pipeline's notebooks in one process, one after the other, no kernel.

It runs in a virtual environment of its own (benchmarks/.venvs/, the project's requirements.lock
plus ploomber-engine, no system site packages) so that what it gains or loses is its own, not
labline's. The benchmark calls `ensure_environment()` (created once, rebuilt when the lock or the
pin changes) and runs this file with that environment's Python on a plan:

    python ploomber_runner.py PLAN.json RESULT.json

PLAN: {"cwd": ..., "steps": [{"name", "notebook", "output", "parameters"}, ...]}. RESULT: the
seconds of each notebook and of the whole, and how many times scrapbook warned "No kernel detected
for 'glue'" (cells run in-process, not in a kernel; the scraps still reach the output notebook as
display outputs, so the benchmark reads them back to see what was kept).
Only the standard library and ploomber-engine are imported in that process.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PIN = "ploomber-engine==0.0.33"
VENV = Path(__file__).resolve().parent / ".venvs" / "ploomber-engine"
NO_KERNEL_WARNING = "No kernel detected for 'glue'"
# ploomber-core sends usage statistics unless told not to; the benchmark machine has no network.
CHILD_ENV = {"PLOOMBER_STATS_ENABLED": "false", "MPLBACKEND": "Agg"}


def ensure_environment(lock: Path, venv: Path = VENV) -> Path:
    """The environment's Python, after creating it when it is missing or built from another lock or pin."""
    python = venv / "bin" / "python"
    wanted = hashlib.sha256(lock.read_bytes() + PIN.encode()).hexdigest()
    stamp = venv / ".installed"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"creating {venv} ({PIN} and {lock.name}; once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--quiet", "-r", str(lock), PIN], check=True)
    stamp.write_text(wanted)
    return python


def run_plan(python: Path, plan: dict, folder: Path, pythonpath: Path) -> dict:
    """Run `plan` in the environment of `python`; the child's RESULT, with its wall time seen from here."""
    plan_file, result_file = folder / "ploomber_plan.json", folder / "ploomber_result.json"
    folder.mkdir(parents=True, exist_ok=True)
    plan_file.write_text(json.dumps(plan))
    env = {**os.environ, **CHILD_ENV, "PYTHONPATH": str(pythonpath)}  # the notebooks import the project
    env.pop("VIRTUAL_ENV", None)
    started = time.perf_counter()
    done = subprocess.run(
        [str(python), __file__, str(plan_file), str(result_file)],
        cwd=plan["cwd"],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"ploomber-engine run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(result_file.read_text())
    result["seconds_with_process"] = seconds
    return result


def _run_step(step: dict) -> dict:
    """One notebook through ploomber-engine; scrapbook's no-kernel warnings are counted, not fatal."""
    import warnings

    from ploomber_engine import execute_notebook

    Path(step["output"]).parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        execute_notebook(step["notebook"], step["output"], parameters=step["parameters"], progress_bar=False)
    seconds = time.perf_counter() - started
    warned = sum(NO_KERNEL_WARNING in str(w.message) for w in caught)
    return {"seconds": seconds, "glue_warnings": warned}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    plan = json.loads(Path(argv[0]).read_text())
    started = time.perf_counter()
    steps = {step["name"]: _run_step(step) for step in plan["steps"]}
    result = {"seconds": time.perf_counter() - started, "steps": steps, "prefix": sys.prefix, "version": PIN}
    Path(argv[1]).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
