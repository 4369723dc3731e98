"""The step parameters that depend on the task (classification or regression), in one place.

`labline run --dataset NAME|FILE` can give the default pipeline a data set of either task. The
trainers' choices that only make sense for one task (the estimator and its grid, the network's
size and schedule) are declared here once per task, and given to every step whose notebook
declares the parameter, unless the pipeline file sets it for that step. Precedence, lowest first:
the notebook's default, the pipeline's `defaults:`, these task defaults, the step's
`parameters:` in the pipeline file, then `-p` overrides.

Example:
    >>> TASK_PARAMETERS["regression"]["estimator"]
    'random_forest'
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.spec import PipelineSpec

TASK_PARAMETERS: dict[str, dict[str, Any]] = {
    "classification": {
        "estimator": "logreg",
        "param_grid": {"C": [0.1, 1.0, 10.0]},
    },
    "regression": {
        # Measured on Airbnb's held-out rows (docs/monitoring.md, benchmarks/airbnb_models.py): a
        # random forest that considers a third of the features at each split, and a network trained
        # briefly at a small learning rate (longer or faster, it overfits the name's TF-IDF columns).
        "estimator": "random_forest",
        "param_grid": {"max_features": [0.33], "min_samples_leaf": [3], "n_estimators": [100]},
        "cv_folds": 3,
        "hidden_sizes": [64, 32],
        "epochs": 10,
        "patience": 3,  # at most 10 epochs; fewer when the validation loss stops falling
        "batch_size": 0,  # grows with the rows: 256 for the shipped sample's 12,000 training rows
        "lr": 0.0003,
    },
}


def task_parameters(task: str) -> dict[str, Any]:
    """A copy of the declared parameters of `task`; a clear error for an unknown task."""
    if task not in TASK_PARAMETERS:
        raise ValueError(f"no pipeline defaults for task {task!r}; tasks are {sorted(TASK_PARAMETERS)}")
    return copy.deepcopy(TASK_PARAMETERS[task])


def with_task_defaults(spec: PipelineSpec, task: str) -> PipelineSpec:
    """A copy of `spec` whose steps get `task`'s parameters where their notebook declares them
    and the pipeline file leaves them unset."""
    from runner.params import read_parameters

    spec = copy.deepcopy(spec)
    for step in spec.steps.values():
        declared = read_parameters(step.notebook)
        for name, value in task_parameters(task).items():
            if name in declared and name not in step.parameters:
                step.parameters[name] = value
    return spec


def pipeline_dataset(spec: PipelineSpec, overrides: list[str]) -> tuple[str | None, str | None]:
    """(dataset, target) the pipeline's steps will be given: the last override, else the file's value."""
    from runner.params import parse_assignment

    found: dict[str, Any] = {}
    for step in spec.steps.values():
        for name in ("dataset", "target"):
            if name in step.parameters and name not in found:
                found[name] = step.parameters[name]
    for text in overrides:
        key, value = parse_assignment(text)
        name = key.rpartition(".")[2]
        if name in ("dataset", "target"):
            found[name] = value
    dataset = found.get("dataset")
    return (str(dataset) if dataset else None), (str(found["target"]) if found.get("target") else None)


def for_dataset(spec: PipelineSpec, overrides: list[str]) -> PipelineSpec:
    """`spec` with the task defaults of the data set its steps will read (unchanged when none is named)."""
    from labline.data.datasets import DatasetError, dataset_task

    dataset, target = pipeline_dataset(spec, overrides)
    if dataset is None or "${" in dataset:
        return spec
    try:
        task = dataset_task(dataset, target)
    except DatasetError:  # not a data set labline knows: the step that reads it says what is wrong
        return spec
    return with_task_defaults(spec, task)
