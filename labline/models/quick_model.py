"""A small model for a notebook that reads one and finds none yet (a fresh clone).

infer, audit and monitor read a model that a training notebook saved. Opened on their own with
their defaults before any run, they train this quick scikit-learn model (logistic regression or
ridge, by task) on the data set's training rows, with the pipeline's split, into their own output
folder, and say so, instead of stopping with a traceback.

Example:
    >>> model_dir, note = model_or_quick("runs/none/model", "iris", "/tmp/out")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from labline.data.snapshot import open_snapshot, split_frames
from labline.models.artifact import MANIFEST, save_sklearn_model
from labline.models.sklearn_models import build_training_pipeline
from labline.paths import project_file

QUICK_ESTIMATORS = {"classification": "logreg", "regression": "ridge"}


def has_model(model_dir: str | Path) -> bool:
    """Whether `model_dir` holds a saved model artifact (its manifest)."""
    return bool(str(model_dir)) and (project_file(model_dir) / MANIFEST).is_file()


def train_quick_model(
    dataset: str, out_dir: str | Path, target: str = "", test_size: float = 0.2, seed: int = 42
) -> Path:
    """Fit the quick model on the training rows of `dataset` and save it to `out_dir`; returns its folder."""
    frame, spec, fingerprint = open_snapshot("", "", dataset, target, test_size, seed)
    train, _ = split_frames(frame)
    estimator = QUICK_ESTIMATORS[spec.task]
    model = build_training_pipeline(spec, estimator, seed).fit(train[spec.features], train[spec.target])
    out_dir = Path(out_dir).resolve()
    save_sklearn_model(
        out_dir,
        model,
        spec,
        metadata={"estimator": estimator, "quick_model": True, "data_fingerprint": fingerprint, "seed": seed},
    )
    return out_dir


def model_or_quick(
    model_dir: str | Path, dataset: str, out_dir: str | Path, target: str = "", test_size: float = 0.2, seed: int = 42
) -> tuple[Path, str]:
    """(`model_dir` when it holds a model, else a quick model trained into `out_dir`; a note saying which)."""
    if has_model(model_dir):
        return project_file(model_dir), f"model {project_file(model_dir)}"
    quick = train_quick_model(dataset, out_dir, target, test_size, seed)
    return quick, (
        f"no model at {model_dir} yet (run the training notebook or `labline run` to make it); "
        f"using a quick {dataset} model trained here: {quick}"
    )
