"""The network's training schedule before and after early stopping and batch sizes that grow
with the rows, per course data set, in the same run.

    python benchmarks/train_schedules.py [--datasets iris census airbnb]

For each data set, notebooks/train_torch.ipynb runs twice under papermill (labline's engine), on
its own split (no explore step: the notebook prepares the same split itself), with the task's
defaults from labline/task_defaults.py:
- `before`: the schedule every classification data set got until now (200 epochs, batches of 16,
  no early stopping) and the regression task's before (10 epochs, batches of 256);
- `after`: the notebook's defaults now (early stopping on the validation loss, the batch size from
  the rows).
A one-epoch run first starts the kernel template, so neither schedule pays for it. Each saved
model is then loaded and scored here on the held-out rows: accuracy and ROC AUC, or
MAE, RMSE and R2. Prints the table (wall seconds of the notebook, fit seconds, epochs run, the
held-out figures, the speed-up) with the load average, and writes
benchmarks/results/train_schedules.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import papermill as pm  # noqa: E402
import scrapbook as sb  # noqa: E402

from labline.audit.performance import classification_overall, positive_class  # noqa: E402
from labline.data.datasets import dataset_task  # noqa: E402
from labline.data.snapshot import prepare_snapshot, split_frames  # noqa: E402
from labline.models.artifact import load_model  # noqa: E402
from labline.models.metrics import regression_metrics  # noqa: E402
from labline.task_defaults import task_parameters  # noqa: E402
from runner.params import read_parameters  # noqa: E402

NOTEBOOK = ROOT / "notebooks" / "train_torch.ipynb"
RESULTS = ROOT / "benchmarks" / "results" / "train_schedules.json"
BEFORE = {
    "classification": {"epochs": 200, "batch_size": 16, "patience": 0},
    "regression": {"epochs": 10, "batch_size": 256, "patience": 0},
}
GLUED = ("fit_seconds", "epochs", "best_epoch", "stop_reason", "batch_size")


def schedule_parameters(task: str, schedule: str) -> dict:
    """The task's defaults for the notebook's declared parameters, with `before`'s schedule on top."""
    declared = read_parameters(str(NOTEBOOK))
    parameters = {k: v for k, v in task_parameters(task).items() if k in declared}
    return {**parameters, **(BEFORE[task] if schedule == "before" else {})}


def held_out(dataset: str, model_dir: str, seed: int = 42, test_size: float = 0.2) -> dict:
    """The saved model scored on the held-out rows of the split the notebook made."""
    frame, spec = prepare_snapshot(dataset, "", test_size, seed)
    _, test = split_frames(frame)
    model = load_model(model_dir)
    rows, truth = test[spec.features], test[spec.target]
    if spec.task == "regression":
        return {k: round(v, 4) for k, v in regression_metrics(truth.to_numpy(float), model.predict(rows)).items()}
    labels = [str(label) for label in model.labels]
    overall = classification_overall(
        truth.astype(str), model.predict(rows), model.predict_proba(rows), labels, positive_class(labels, None)
    )
    return {"test_accuracy": round(overall["accuracy"], 4), "roc_auc": round(overall["roc_auc"], 4)}


def run_once(dataset: str, schedule: str, folder: Path) -> dict:
    task = dataset_task(dataset, None)
    parameters = {**schedule_parameters(task, schedule), "dataset": dataset, "output_dir": str(folder / "out")}
    started = time.perf_counter()
    execute(parameters, folder / "out.ipynb")
    wall = time.perf_counter() - started
    scraps = sb.read_notebook(str(folder / "out.ipynb")).scraps
    glued = {name: scraps[name].data for name in GLUED}
    return {
        "dataset": dataset,
        "schedule": schedule,
        "wall_seconds": round(wall, 2),
        **glued,
        **held_out(dataset, scraps["model_dir"].data),
    }


def warm_up(folder: Path) -> None:
    """One short run first, so the first measured run does not pay for starting the kernel template."""
    parameters = {"epochs": 1, "output_dir": str(folder / "warm-up")}
    execute(parameters, folder / "warm-up.ipynb")


def execute(parameters: dict, output: Path) -> None:
    pm.execute_notebook(
        str(NOTEBOOK), str(output), parameters, engine_name="labline", cwd=str(ROOT), progress_bar=False
    )


def print_table(rows: list[dict]) -> None:
    columns = ["dataset", "schedule", "wall_seconds", "fit_seconds", "epochs", "best_epoch", "batch_size"]
    known = {"test_accuracy", "roc_auc", "test_mae", "test_rmse", "test_r2"}
    metrics = sorted({k for row in rows for k in row} & known)
    print(" | ".join(columns + metrics))
    for row in rows:
        print(" | ".join(str(row.get(c, "-")) for c in columns + metrics))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["iris", "census", "airbnb"])
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        warm_up(Path(tmp))
        for dataset in args.datasets:
            for schedule in ("before", "after"):
                folder = Path(tmp) / f"{dataset}-{schedule}"
                folder.mkdir()
                rows.append(run_once(dataset, schedule, folder))
                print(rows[-1], flush=True)
    wall = {(row["dataset"], row["schedule"]): row["wall_seconds"] for row in rows}
    speedups = {d: round(wall[d, "before"] / wall[d, "after"], 2) for d in args.datasets}
    result = {"load_average_before": load_before, "load_average_after": os.getloadavg(), "runs": rows}
    result["speedup_wall"] = speedups
    print_table(rows)
    print(f"wall-clock speed-up (before / after): {speedups}; load average {load_before} -> {os.getloadavg()}")
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
