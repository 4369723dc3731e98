"""The data set a run uses, read from the parameters its steps are given.

The manifest, `labline runs`, the report and the registry's data-set column all say which data
set a run read, so it is taken from what the steps get (the pipeline's `defaults:` and step
`parameters:`, the task defaults, then the `-p` overrides, merged by `runner.plan.step_parameters`),
never from a command-line option alone: `labline run --pipeline pipeline_airbnb.yaml` reads airbnb.

The steps that read the data set are the first ones (no `needs`): the later steps take their rows
from an upstream snapshot (`data_path: ${explore.snapshot_path}`), and a `dataset` they declare is
then unused. A first step that sets no `dataset` reads its notebook's default.

Example:
    >>> run_dataset(load_pipeline("pipeline_airbnb.yaml"), [])  # doctest: +SKIP
    'airbnb'
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.spec import PipelineSpec

DATASET, TARGET = "dataset", "target"


def _merged(spec: PipelineSpec, overrides: list[str] | dict[str, Any] | None) -> tuple[dict, dict]:
    from runner.plan import declared_parameters, step_parameters

    declared = declared_parameters(spec)
    return declared, step_parameters(spec, overrides, declared)


def _selected(spec: PipelineSpec, only: list[str] | None) -> list[str]:
    from runner.pipeline import select_steps

    return select_steps(spec, only)


def _value(declared: dict, params: dict, name: str) -> Any:
    """The value a step gets for `name`: given, else the notebook's default."""
    return params[name] if name in params else declared[name].default


def step_datasets(
    spec: PipelineSpec, overrides: list[str] | dict[str, Any] | None = None, only: list[str] | None = None
) -> dict[str, str]:
    """step -> the `dataset` it reads, for the first steps (no `needs`) a run of `only` executes."""
    from runner.spec import references

    declared, params = _merged(spec, overrides)
    found = {}
    for name in _selected(spec, only):
        if spec.steps[name].needs or DATASET not in declared[name]:
            continue
        value = _value(declared[name], params[name], DATASET)
        if value not in (None, "") and not references(value):
            found[name] = str(value)
    return found


def run_dataset(
    spec: PipelineSpec, overrides: list[str] | dict[str, Any] | None = None, only: list[str] | None = None
) -> str | None:
    """What a run records as its data set: the one its first steps read (several: joined by ', ')."""
    return ", ".join(dict.fromkeys(step_datasets(spec, overrides, only).values())) or None


def _given_names(overrides: list[str] | dict[str, Any] | None) -> set[str]:
    from runner.params import parse_assignment

    keys = overrides.keys() if isinstance(overrides, dict) else [parse_assignment(o)[0] for o in overrides or []]
    return {key.rpartition(".")[2] for key in keys}


def _as_steps_see_it(source: str, root: Path) -> str:
    """A relative file path as the steps read it (they run in the pipeline's folder); names as they are."""
    from labline.data.datasets import BUILTIN

    if source.partition(":")[0] in BUILTIN or Path(source).is_absolute():
        return source
    return str(root / source)


def _dataset_and_target(declared: dict, params: dict) -> tuple[str, str]:
    return tuple(str(_value(declared, params, k) or "") if k in declared else "" for k in (DATASET, TARGET))


def check_given_datasets(
    spec: PipelineSpec, overrides: list[str] | dict[str, Any] | None, only: list[str] | None = None
) -> None:
    """Check every data set an override gives a step (`-p [STEP.]dataset=...`, `--dataset`) as `--dataset`
    is checked (`check_dataset`: where its file lies, that it loads, enough rows for the split), before
    any run folder or kernel exists; raises DatasetError naming the file and what is wrong."""
    if not {DATASET, TARGET} & _given_names(overrides):
        return
    from labline.data.datasets import check_dataset
    from runner.spec import references

    declared, given = _merged(spec, overrides)
    _, planned = _merged(spec, None)
    checked = set()
    for name in _selected(spec, only):
        if DATASET not in declared[name]:
            continue
        pair = _dataset_and_target(declared[name], given[name])
        unchanged = pair == _dataset_and_target(declared[name], planned[name])
        if unchanged or not pair[0] or references(pair[0]) or pair in checked:
            continue
        checked.add(pair)
        check_dataset(_as_steps_see_it(pair[0], spec.root), pair[1] or None, spec.root)
