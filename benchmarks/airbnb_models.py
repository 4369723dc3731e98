"""Airbnb prices: labline's two models against the course's random forest, on the same held-out rows.

    python benchmarks/airbnb_models.py

1. `labline run --dataset airbnb`'s trainers (the default pipeline.yaml with the regression task's
   defaults from labline/task_defaults.py): explore writes the snapshot with the split, then
   train_sklearn and train_torch train on its training rows; their glued test figures are read,
   and each saved model is loaded and scored again on the held-out rows here (the two must agree).
2. The network with the schedule labline used before (30 epochs at lr 0.003, hidden 64-32).
3. The baseline, in this process on the very same training and held-out rows: the course's random
   forest (100 trees, the numeric columns imputed by their median, borough and room type one-hot
   encoded; no text, no derived review age).

Prints MAE, RMSE and R2 of each, the ratio of each MAE to the baseline's, and writes them to
benchmarks/results/airbnb_models.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labline.data.snapshot import read_snapshot, split_frames  # noqa: E402
from labline.models.artifact import load_model  # noqa: E402
from labline.models.metrics import regression_metrics  # noqa: E402
from labline.task_defaults import for_dataset  # noqa: E402
from runner.pipeline import run_pipeline  # noqa: E402
from runner.spec import load_pipeline  # noqa: E402

COURSE_NUMERIC = [
    "latitude",
    "longitude",
    "minimum_nights",
    "number_of_reviews",
    "reviews_per_month",
    "calculated_host_listings_count",
    "availability_365",
]
COURSE_CATEGORICAL = ["neighbourhood_group", "room_type"]
PREVIOUS_TORCH = ["train_torch.epochs=30", "train_torch.lr=0.003", "train_torch.hidden_sizes=[64, 32]"]


def course_random_forest(train, test, seed: int = 42) -> np.ndarray:
    """The course's model: a random forest on the numeric columns and one-hot borough and room type."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    prepare = ColumnTransformer(
        [
            ("numeric", SimpleImputer(strategy="median"), COURSE_NUMERIC),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), COURSE_CATEGORICAL),
        ]
    )
    model = Pipeline([("prepare", prepare), ("forest", RandomForestRegressor(n_estimators=100, random_state=seed))])
    return model.fit(train, train["price"]).predict(test)


def run_trainers(runs: Path, overrides: list[str]) -> dict:
    spec = load_pipeline(ROOT / "pipeline.yaml")
    overrides = ["dataset=airbnb", *overrides]
    record = run_pipeline(
        for_dataset(spec, overrides),
        runs,
        overrides=overrides,
        workers=2,
        only=["train_sklearn", "train_torch"],
        cache=False,
    )
    if record.manifest["status"] != "succeeded":
        raise SystemExit(f"the pipeline failed: {json.dumps(record.manifest['steps'], default=str)[:2000]}")
    return record.manifest


def scored(name: str, values: dict, baseline_mae: float | None = None) -> dict:
    row = {"model": name, **{k: round(float(values[k]), 4) for k in ("test_mae", "test_rmse", "test_r2")}}
    if baseline_mae:
        row["mae_vs_course"] = round(row["test_mae"] / baseline_mae, 4)
    return row


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        manifest = run_trainers(Path(folder) / "runs", [])
        previous = run_trainers(Path(folder) / "previous", PREVIOUS_TORCH)
        steps = manifest["steps"]
        train, test = split_frames(read_snapshot(steps["explore"]["scraps"]["snapshot_path"]))
        course = regression_metrics(test["price"], course_random_forest(train, test))
        rows = [scored("course random forest (baseline)", course)]
        for step in ("train_sklearn", "train_torch"):
            glued = steps[step]["scraps"]
            again = regression_metrics(test["price"], load_model(glued["model_dir"]).predict(test))
            assert abs(again["test_mae"] - glued["test_mae"]) < 1e-6, (step, again, glued)
            rows.append(scored(f"labline {glued['model_name']} (default pipeline)", glued, course["test_mae"]))
        rows.append(
            scored(
                "labline torch-mlp, previous schedule", previous["steps"]["train_torch"]["scraps"], course["test_mae"]
            )
        )
    for row in rows:
        ratio = f"  MAE x{row['mae_vs_course']:.3f} of the course's" if "mae_vs_course" in row else ""
        print(
            f"{row['model']:<48} MAE {row['test_mae']:7.2f}  RMSE {row['test_rmse']:7.2f}  "
            f"R2 {row['test_r2']:.3f}{ratio}"
        )
    result = {
        "train_rows": len(train),
        "test_rows": len(test),
        "models": rows,
        "parameters": {s: steps[s]["parameters"] for s in ("train_sklearn", "train_torch")},
    }
    out = ROOT / "benchmarks" / "results" / "airbnb_models.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
