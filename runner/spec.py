"""pipeline.yaml: the steps, their notebooks, parameters and dependencies.

    name: iris
    defaults:               # given to every step whose notebook declares the parameter
      seed: 42
    steps:
      explore:
        notebook: notebooks/explore.ipynb
        parameters: {dataset: iris}
      train:
        notebook: notebooks/train.ipynb
        needs: [explore]
        parameters:
          data_path: ${explore.snapshot_path}   # a value the explore step glued
        timeout: 600        # seconds for the whole notebook (optional)
        retries: 0
        inputs: [data/extra.csv, data/weekly]  # files or folders it reads besides its parameters (optional)

`output_dir` and `run_id` are reserved: the runner gives each step its own folder inside the
run, and the run's id to notebooks that declare `run_id` (neither pipeline.yaml nor `-p` sets
them). A step's notebook lies inside the pipeline's folder (the project), unless the pipeline says
`allow_outside: true` or the command is given `--allow-outside`: a pipeline copied from elsewhere
does not run a notebook from anywhere on the machine without a word. `inputs:` name what a step reads that no
parameter names (relative to the pipeline file); their content counts in the step's fingerprint
(runner/inputs.py), and one that does not exist is an error here.
"""

from __future__ import annotations

import graphlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runner.errors import SpecError

REFERENCE = re.compile(r"\$\{([A-Za-z_][\w-]*)\.([A-Za-z_]\w*)\}")
RESERVED = {"output_dir", "run_id"}
STEP_KEYS = {"notebook", "parameters", "needs", "timeout", "retries", "description", "inputs"}


@dataclass
class StepSpec:
    name: str
    notebook: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    needs: list[str] = field(default_factory=list)
    timeout: float | None = None
    retries: int = 0
    description: str = ""
    inputs: list[Path] = field(default_factory=list)  # absolute paths of the files and folders in `inputs:`


@dataclass
class PipelineSpec:
    name: str
    path: Path
    steps: dict[str, StepSpec]
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """The folder relative paths in the pipeline are resolved against."""
        return self.path.parent

    def order(self) -> list[str]:
        """Steps in a dependency order (stable: file order among independent steps)."""
        sorter = graphlib.TopologicalSorter({name: step.needs for name, step in self.steps.items()})
        order, position = [], {name: i for i, name in enumerate(self.steps)}
        sorter.prepare()
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=position.get)
            order.extend(ready)
            sorter.done(*ready)
        return order

    def downstream(self, name: str) -> list[str]:
        """Every step that needs `name`, directly or through others."""
        found: list[str] = []
        frontier = [name]
        while frontier:
            current = frontier.pop()
            for other, step in self.steps.items():
                if current in step.needs and other not in found:
                    found.append(other)
                    frontier.append(other)
        return found

    def upstream(self, name: str) -> set[str]:
        seen: set[str] = set()
        frontier = list(self.steps[name].needs)
        while frontier:
            current = frontier.pop()
            if current not in seen:
                seen.add(current)
                frontier.extend(self.steps[current].needs)
        return seen


def references(value: Any) -> list[tuple[str, str]]:
    """The `${step.scrap}` references inside a parameter value."""
    if isinstance(value, str):
        return REFERENCE.findall(value)
    if isinstance(value, dict):
        return [r for v in value.values() for r in references(v)]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in references(v)]
    return []


def refuse_reserved(names: Any, where: str) -> None:
    """SpecError when `names` holds a parameter the runner sets itself (RESERVED)."""
    reserved = sorted(RESERVED & set(names))
    if reserved:
        raise SpecError(f"{where}: {reserved} is set by the runner (each step's own folder, the run's id), not by you")


def load_pipeline(path: str | Path, allow_outside: bool = False) -> PipelineSpec:
    """Read and validate a pipeline file; SpecError says what is wrong and where. A notebook outside the
    pipeline's folder is refused unless `allow_outside` or the file's `allow_outside: true`."""
    path = Path(path).resolve()
    if not path.exists():
        raise SpecError(f"pipeline file {str(path)!r} does not exist")
    try:
        raw = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: 5x faster
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("steps"), dict) or not raw["steps"]:
        raise SpecError(f"{path}: expected a mapping with a non-empty 'steps:' mapping of step name to step")
    outside_ok = raw.get("allow_outside", False)
    if not isinstance(outside_ok, bool):
        raise SpecError(f"{path}: 'allow_outside' must be true or false, got {outside_ok!r}")
    steps: dict[str, StepSpec] = {}
    for name, body in raw["steps"].items():
        if not isinstance(body, dict) or "notebook" not in body:
            raise SpecError(f"{path}: step {name!r} needs a 'notebook:' path")
        unknown = set(body) - STEP_KEYS
        if unknown:
            raise SpecError(f"{path}: step {name!r} has unknown keys {sorted(unknown)}; allowed: {sorted(STEP_KEYS)}")
        notebook = (path.parent / body["notebook"]).resolve()
        if not notebook.exists():
            raise SpecError(f"{path}: step {name!r}: notebook {body['notebook']!r} does not exist")
        if not (allow_outside or outside_ok or notebook.is_relative_to(path.parent)):
            raise SpecError(
                f"{path}: step {name!r}: notebook {str(notebook)!r} lies outside the project folder "
                f"{str(path.parent)!r}; run it with --allow-outside, or set 'allow_outside: true' in the pipeline file"
            )
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            raise SpecError(f"{path}: step {name!r}: 'parameters' must be a mapping")
        refuse_reserved(params, f"{path}: step {name!r}")
        needs = body.get("needs") or []
        needs = [needs] if isinstance(needs, str) else list(needs)
        timeout = body.get("timeout")
        retries = body.get("retries", 0)
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise SpecError(f"{path}: step {name!r}: timeout must be a positive number of seconds")
        if not isinstance(retries, int) or retries < 0:
            raise SpecError(f"{path}: step {name!r}: retries must be a whole number >= 0")
        inputs = _step_inputs(path, name, body.get("inputs"))
        steps[name] = StepSpec(
            name, notebook, dict(params), needs, timeout, retries, body.get("description", ""), inputs
        )
    spec = PipelineSpec(str(raw.get("name", path.stem)), path, steps, dict(raw.get("defaults") or {}))
    _check_graph(spec)
    return spec


def _step_inputs(path: Path, step: str, value: Any) -> list[Path]:
    """The `inputs:` of a step: existing files or folders, relative to the pipeline file (or absolute)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) and item.strip() for item in items):
        raise SpecError(f"{path}: step {step!r}: 'inputs' must be a list of file or folder paths, got {value!r}")
    found = []
    for item in items:
        if references(item):
            raise SpecError(f"{path}: step {step!r}: input {item!r}: inputs are fixed paths, references are parameters")
        resolved = (path.parent / item).resolve()
        if not resolved.exists():
            raise SpecError(
                f"{path}: step {step!r}: input {item!r} does not exist (looked for {resolved}; "
                "inputs are files or folders relative to the pipeline file)"
            )
        found.append(resolved)
    return found


def _check_graph(spec: PipelineSpec) -> None:
    for name, step in spec.steps.items():
        for need in step.needs:
            if need not in spec.steps:
                raise SpecError(f"{spec.path}: step {name!r} needs unknown step {need!r}; steps are {list(spec.steps)}")
    try:
        spec.order()
    except graphlib.CycleError as exc:
        raise SpecError(f"{spec.path}: steps depend on each other in a cycle: {exc.args[1]}") from None
    for name, step in spec.steps.items():
        upstream = spec.upstream(name)
        for ref_step, _ in references(step.parameters):
            if ref_step not in upstream:
                raise SpecError(
                    f"{spec.path}: step {name!r} uses ${{{ref_step}...}} but does not need {ref_step!r}; "
                    f"add it to 'needs:'"
                )
