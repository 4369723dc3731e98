"""From a spec and overrides to each step's concrete parameters.

Overrides are `STEP.PARAM=VALUE` (one step) or `PARAM=VALUE` (every step that declares PARAM); one
that names no declared parameter, or a parameter the runner sets (`output_dir`, `run_id`), is refused.
Upstream outputs reach a step through `${step.scrap}` references, resolved from what the
upstream step glued, never from guessed file locations.
"""

from __future__ import annotations

from typing import Any

from runner.errors import ParameterError, SpecError
from runner.params import Parameter, bind_parameters, parse_assignment, read_parameters, shortened
from runner.spec import REFERENCE, PipelineSpec, references, refuse_reserved


def declared_parameters(spec: PipelineSpec) -> dict[str, dict[str, Parameter]]:
    return {name: read_parameters(step.notebook) for name, step in spec.steps.items()}


def step_parameters(
    spec: PipelineSpec,
    overrides: list[str] | dict[str, Any] | None = None,
    declared: dict[str, dict[str, Parameter]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each step's parameters: defaults, then the pipeline's, then overrides; checked and converted.

    References stay as `${...}` strings until the upstream step has run.
    """
    declared = declared_parameters(spec) if declared is None else declared
    values: dict[str, dict[str, Any]] = {}
    for name, step in spec.steps.items():
        mine = {k: v for k, v in spec.defaults.items() if k in declared[name]}
        mine.update(step.parameters)
        values[name] = mine
    items = overrides.items() if isinstance(overrides, dict) else (parse_assignment(o) for o in overrides or [])
    for key, value in items:
        step_name, dot, param = key.partition(".")
        refuse_reserved({param if dot else key}, f"override {shortened(key)!r}")
        if dot and step_name in spec.steps:
            values[step_name][param] = value
            continue
        if dot:
            raise ParameterError(f"override {shortened(key)!r}: no step {step_name!r}; steps are {list(spec.steps)}")
        targets = [n for n in spec.steps if key in declared[n]]
        if not targets:
            raise ParameterError(f"override {shortened(key)!r}: no step declares a parameter {shortened(key)!r}")
        for target in targets:
            values[target][key] = value
    for name, step in spec.steps.items():
        plain = {k: v for k, v in values[name].items() if not references(v)}
        values[name].update(bind_parameters(step.notebook, plain, declared[name]))
        unknown = [k for k in values[name] if k not in declared[name]]
        if unknown:  # references to undeclared names
            bind_parameters(step.notebook, {k: values[name][k] for k in unknown}, declared[name])
    return values


def resolve_references(params: dict[str, Any], scraps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Replace `${step.scrap}` with the glued value (whole value) or its text (inside a string)."""

    def lookup(step: str, name: str) -> Any:
        if step not in scraps or name not in scraps[step]:
            glued = sorted(scraps.get(step, {}))
            raise SpecError(f"${{{step}.{name}}}: step {step!r} did not glue {name!r}; it glued {glued}")
        return scraps[step][name]

    def resolve(value: Any) -> Any:
        if isinstance(value, str):
            whole = REFERENCE.fullmatch(value)
            if whole:
                return lookup(*whole.groups())
            return REFERENCE.sub(lambda m: str(lookup(m.group(1), m.group(2))), value)
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    return {k: resolve(v) for k, v in params.items()}
