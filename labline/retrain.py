"""Retraining on a new batch: validate, accumulate, train, compare on one holdout, promote or keep.

`retrain(batch, dataset)`:
1. takes an exclusive lock (`<state>/retrain.lock`, flock: released even if the process dies),
   so two retrains never run at once; a second one fails at once with RetrainLocked;
2. validates the raw batch against the data set's declaration (schema, ranges, categories,
   missing rates): on failure it stops with the report, nothing trained or promoted. Drift of
   the batch against the champion's training rows is measured and recorded, not blocking:
   drift is why one retrains;
3. appends the batch to the accumulated raw data (the champion's training source at first,
   then the file the previous retrain wrote) and runs the pipeline on it;
4. scores the new run's models (challengers) and the champion on the same rows, the new run's
   held-out split less any row the champion was trained on (overall metric and the error per
   categorical slice), and passes the best challenger through the registry's gate rules with
   those same-holdout figures; the alias moves only when every rule passes;
5. records the decision (`<state>/decisions.jsonl`, and a folder per retrain) and, when the
   pipeline ran, moves the accumulated-data pointer (`<state>/<dataset>-accumulated.json`).

All or nothing: the pointer, the decision and its log entry are written together, after the
decision. A retrain that raises before (the fair holdout too small, a model that will not load)
writes none of them: the next retrain starts from the same accumulated data and champion. Its
folder stays, without a decision.json, with what it had done (validation report, accumulated rows).
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labline.glue import SnapshotGlue
from labline.run_dataset import DATASET
from runner.contracts import RunManifest, RunStatus
from runner.notebook import write_atomic


class RetrainError(RuntimeError):
    """A retrain that could not be carried out; the message says why."""


class RetrainLocked(RetrainError):
    """Another retrain holds the lock."""


class RetrainStatus(StrEnum):
    """How a retrain ended: the words decision.json and decisions.jsonl hold, and the exit code's key."""

    PROMOTED = "promoted"  # the challenger passed every gate rule and is the champion now
    KEPT = "kept"  # a gate rule failed: the champion stays
    INVALID = "invalid"  # the batch failed validation: nothing trained
    FAILED = "failed"  # the pipeline failed


@dataclass
class RetrainOutcome:
    status: RetrainStatus
    dataset: str
    batch: str
    folder: str
    validation_report: str = ""
    accumulated: str = ""
    accumulated_rows: int = 0
    run_id: str = ""
    champion: str = ""  # the champion before this retrain
    challenger: str = ""
    holdout_rows: int = 0
    holdout_metrics: dict = field(default_factory=dict)  # label -> {metric: value}
    reasons: list = field(default_factory=list)  # the gate's checks: rule, passed, reason
    drift: dict = field(default_factory=dict)
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def summary(self) -> str:
        lines = [f"retrain {self.status}: {self.dataset} batch {self.batch}"]
        if self.run_id:
            lines.append(f"run {self.run_id} on {self.accumulated_rows} accumulated rows")
        for label, metrics in self.holdout_metrics.items():
            lines.append(
                f"  {label}: "
                + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                + f" on the same {self.holdout_rows} held-out rows"
            )
        lines += [f"  {'pass' if r['passed'] else 'FAIL'} {r['rule']}: {r['reason']}" for r in self.reasons]
        if self.validation_report:
            lines.append(f"validation report: {self.validation_report}")
        return "\n".join(lines)


def default_state_dir() -> Path:
    from labline.paths import retrain_state

    return retrain_state()


@contextmanager
def retrain_lock(state_dir: Path):
    """Hold `<state_dir>/retrain.lock` exclusively for the block; raise RetrainLocked if held."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "retrain.lock"
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RetrainLocked(f"another retrain is running ({holder}); lock {path}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {datetime.now(UTC).isoformat(timespec='seconds')}")
        handle.flush()
        yield path
    finally:
        handle.close()  # closing releases the flock


def raw_source(dataset_param: str) -> Path | None:
    """The raw file behind an explore `dataset` parameter (`airbnb:PATH` -> PATH, `airbnb` -> its file)."""
    from labline.data.datasets import BUILTIN, _module
    from labline.paths import project_file

    name, _, arg = dataset_param.partition(":")
    if arg:
        return project_file(arg)
    if name in BUILTIN and hasattr(_module(name), "DATA_FILE"):
        return project_file(_module(name).DATA_FILE)
    path = project_file(dataset_param)
    return path if path.exists() else None


def _champion(registry, scope: str):
    """The champion of this data set (aliases are scoped by data set), or None."""
    from labline.registry import RegistryError

    try:
        return registry.resolve("champion", scope=scope)
    except RegistryError:
        return None


def _run_manifest(runs_root: Path, run_id: str, artifact_path: str) -> dict:
    for folder in Path(artifact_path).parents:
        if folder.name == run_id and (folder / "manifest.json").exists():
            return json.loads((folder / "manifest.json").read_text())
    return json.loads((runs_root / run_id / "manifest.json").read_text())


def _base_data(state: Path, dataset: str, champion, runs_root: Path) -> Path | None:
    pointer = state / f"{dataset}-accumulated.json"
    if pointer.exists():
        return Path(json.loads(pointer.read_text())["path"])
    if champion is None:
        return None
    run = RunManifest.from_dict(_run_manifest(runs_root, champion.run_id, champion.artifact_path))
    explore = next((step for step in run.steps.values() if SnapshotGlue.MARKERS & set(step.glued)), None)
    params = explore.parameters if explore else {}
    if not isinstance(params, dict):
        params = {}
    return raw_source(str(params.get(DATASET, dataset)))


def _score(model, rows: pd.DataFrame, spec) -> dict:
    from labline.models.metrics import classification_metrics, regression_metrics

    predicted = model.predict(rows)
    if spec.task == "regression":
        return regression_metrics(rows[spec.target].to_numpy(float), np.asarray(predicted, dtype=float))
    found = classification_metrics(rows[spec.target].astype(str), predicted.astype(str), spec.labels or model.labels)
    return {k: v for k, v in found.items() if k != "confusion_matrix"}


def _row_keys(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """A hash per row of `columns` (features and target), to recognise the same listing twice."""
    return pd.util.hash_pandas_object(frame[columns].astype(str), index=False)


def _unseen(holdout: pd.DataFrame, seen: pd.DataFrame, spec) -> pd.DataFrame:
    """Held-out rows the champion was not trained on: a fair holdout for both models."""
    columns = [c for c in spec.columns if c in holdout.columns and c in seen.columns]
    return holdout[~_row_keys(holdout, columns).isin(set(_row_keys(seen, columns)))]


def _with_holdout(version, model, holdout: pd.DataFrame, spec):
    """`version` with its metrics and audit slices measured on `holdout`, so challenger and champion
    are judged on the very same rows (slices: each categorical value, at least 30 rows)."""
    from labline.audit.slices import regression_slice_metrics, slice_columns, slice_metrics

    metrics = _score(model, holdout, spec)
    predicted = np.asarray(model.predict(holdout))
    slices = slice_columns(holdout, [], list(spec.categorical))
    if spec.task == "regression":
        table = regression_slice_metrics(slices, holdout[spec.target].to_numpy(float), predicted.astype(float))
    else:
        table = slice_metrics(slices, holdout[spec.target].astype(str).to_numpy(), predicted.astype(str))
    checks = dict(version.checks)
    if checks.get("audit"):
        checks["audit"] = {**checks["audit"], "slices": table.to_dict("records")}
    return replace(version, metrics={**version.metrics, **metrics}, checks=checks), metrics


@dataclass
class _Job:
    """What every phase of one retrain needs: where it records, what it judges against."""

    dataset: str
    batch: Path
    spec: Any  # the data set's DatasetSpec
    state: Path
    runs: Path
    registry: Any  # labline.registry.Registry
    registry_url: str | None
    champion: Any  # the champion ModelVersion before this retrain, or None
    folder: Path
    outcome: RetrainOutcome


def retrain(
    batch: str | Path,
    dataset: str,
    pipeline: str | Path = "pipeline_airbnb.yaml",
    registry_url: str | None = None,
    runs_root: str | Path | None = None,
    state_dir: str | Path | None = None,
    overrides: list[str] | None = None,
    only: list[str] | None = None,
    workers: int | None = None,
    margin: float = 0.0,
    slice_tolerance: float | None = None,
) -> RetrainOutcome:
    """Retrain `dataset` on `batch` (a raw file); see the module docstring for the steps."""
    from labline.data.datasets import get_spec
    from labline.paths import runs_root as default_runs_root
    from labline.registry import Registry

    state = Path(state_dir or default_state_dir())
    spec = get_spec(dataset)
    _check_policy(spec, margin, slice_tolerance)
    batch = Path(batch)
    if not batch.exists():
        raise RetrainError(f"batch file {str(batch)!r} does not exist")
    with retrain_lock(state):
        folder = state / datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
        folder.mkdir(parents=True)
        registry = Registry(registry_url)
        job = _Job(
            dataset,
            batch,
            spec,
            state,
            Path(runs_root or default_runs_root()),
            registry,
            registry_url,
            _champion(registry, spec.name),
            folder,
            RetrainOutcome(RetrainStatus.INVALID, dataset, str(batch), str(folder)),
        )
        return _phases(job, pipeline, overrides, only, workers, margin, slice_tolerance)


def _check_policy(spec, margin: float, slice_tolerance: float | None) -> None:
    """The gate's policy is refused before anything runs (a negative margin), not after training."""
    from labline.registry import GatePolicy, RegistryError
    from labline.registry.gate import default_metric

    try:
        GatePolicy(default_metric(spec.task), margin, 0.0 if slice_tolerance is None else slice_tolerance)
    except RegistryError as exc:
        raise RetrainError(str(exc)) from None


def _phases(job: _Job, pipeline, overrides, only, workers, margin, slice_tolerance) -> RetrainOutcome:
    """Phases 2 to 5 in order; the state is written only at the end, by `_record`."""
    passed, reference = _validate(job)
    if not passed:
        return _record(job)
    record = _run_on_accumulated(job, pipeline, overrides, only, workers)
    if record is None:
        return _record(job)
    holdout = _fair_holdout(job, record, reference)
    best = _best_challenger(job, record, holdout)
    _decide(job, best, holdout, margin, slice_tolerance)
    return _record(job, {"path": job.outcome.accumulated, "run_id": record.run_id})


def _validate(job: _Job):
    """Phase 2: validate the batch (blocking) and measure its drift from the champion (recorded only).

    Returns (passed, the champion's reference data or None)."""
    from labline.data.validate import read_batch, validate
    from labline.monitor.drift import detect_drift
    from labline.monitor.sources import derive, reference_from_registry

    rows = read_batch(job.batch, job.spec)
    report = validate(rows, job.spec)
    job.outcome.validation_report = str(report.save(job.folder / "validation.md"))
    reference = None
    if job.champion is not None:
        reference = reference_from_registry(str(job.champion.version), job.registry_url, job.runs)
        job.outcome.champion = job.champion.label
        drift = detect_drift(reference.train, derive(rows, job.spec), job.spec)
        job.outcome.drift = {
            "status": drift.status,
            "drifted": [f.feature for f in drift.drifted],
            "share": drift.drifted_share,
        }
    if not report.passed:
        job.outcome.reasons = [
            {
                "rule": "validation",
                "passed": False,
                "reason": "; ".join(f"{c.name}: {c.detail or c.figure}" for c in report.failures),
            }
        ]
    return report.passed, reference


def _accumulate(job: _Job) -> Path:
    """Phase 3a: the previous accumulated data (or the champion's source) plus the batch, without duplicates."""
    from labline.data.datasets import read_table

    base = _base_data(job.state, job.dataset, job.champion, job.runs)
    parts = [read_table(base)] if base is not None else []
    accumulated = pd.concat([*parts, read_table(job.batch)], ignore_index=True).drop_duplicates()
    path = job.folder / f"{job.dataset}-accumulated.csv.gz"
    accumulated.to_csv(path, index=False)
    job.outcome.accumulated, job.outcome.accumulated_rows = str(path), len(accumulated)
    return path


def _run_on_accumulated(job: _Job, pipeline, overrides, only, workers):
    """Phase 3b: run the pipeline on the accumulated data; the run record, or None when it failed."""
    from labline.env import run_metadata
    from labline.paths import project_file, project_root
    from labline.run_dataset import run_dataset
    from runner.pipeline import run_pipeline
    from runner.spec import load_pipeline

    acc_path = _accumulate(job)
    spec = load_pipeline(project_file(pipeline))
    given = [f"explore.{DATASET}={job.dataset}:{acc_path}", *(overrides or [])]
    metadata = {
        "dataset": run_dataset(spec, given, only),
        **run_metadata(project_root()),
        "retrain": {"batch": str(job.batch), "accumulated": str(acc_path)},
    }
    record = run_pipeline(spec, job.runs, overrides=given, workers=workers, only=only, metadata=metadata)
    job.outcome.run_id = record.run_id
    run = record.contract
    if run.status != RunStatus.SUCCEEDED:
        job.outcome.status = RetrainStatus.FAILED
        failed = [name for name, step in run.steps.items() if not step.status.ok]
        job.outcome.reasons = [
            {"rule": "pipeline", "passed": False, "reason": f"run {record.run_id} {run.status}: steps {failed}"}
        ]
        return None
    return record


def _fair_holdout(job: _Job, record, reference) -> pd.DataFrame:
    """Phase 4a: the new run's held-out rows the champion was not trained on (at least 30)."""
    from labline.monitor.sources import reference_from_run

    holdout = reference_from_run(str(record.path), job.runs).test
    if reference is not None:  # the accumulated data holds the champion's training rows
        holdout = _unseen(holdout, reference.train, job.spec)
    if len(holdout) < 30:
        raise RetrainError(
            f"only {len(holdout)} held-out rows the champion has not seen; "
            "need 30 to compare challenger and champion (use a larger batch)"
        )
    job.outcome.holdout_rows = len(holdout)
    return holdout


def _best_challenger(job: _Job, record, holdout: pd.DataFrame):
    """Phase 4b: register the run's models and keep the best on the holdout, with its holdout figures."""
    from labline.models.artifact import load_model
    from labline.registry.gate import default_metric, higher_is_better

    metric = default_metric(job.spec.task)
    sign = 1 if higher_is_better(metric) else -1
    scored = []
    for version in job.registry.register_run(record.manifest):
        judged, metrics = _with_holdout(version, load_model(version.artifact_path), holdout, job.spec)
        job.outcome.holdout_metrics[version.label] = metrics
        scored.append((sign * metrics[metric], judged))
    best = max(scored, key=lambda pair: pair[0])[1]
    job.outcome.challenger = best.label
    return best


def _decide(job: _Job, best, holdout: pd.DataFrame, margin: float, slice_tolerance: float | None) -> None:
    """Phase 4c and 5: the gate's rules on the same-holdout figures; the alias moves only if all pass."""
    from labline.registry import GatePolicy
    from labline.registry.gate import default_metric, evaluate

    metric = default_metric(job.spec.task)
    incumbent = None
    if job.champion is not None:
        _, champion_model = job.registry.load_model(str(job.champion.version))
        incumbent, held = _with_holdout(job.champion, champion_model, holdout, job.spec)
        job.outcome.holdout_metrics[f"champion {job.champion.label}"] = held
    if slice_tolerance is None:
        # MAE slices are in the target's unit: allow a tenth of the overall held-out error.
        slice_tolerance = 0.05 if job.spec.task == "classification" else 0.1 * best.metrics[metric]
    checks = evaluate(best, incumbent, "champion", GatePolicy(metric, margin, slice_tolerance))
    # One transaction: move the alias only if every rule passed and the champion is still the one
    # judged against, and record the decision (promoted or refused) in the registry's history.
    expected = job.champion.version if job.champion is not None else None
    decision = job.registry.apply_decision("champion", best.version, checks, metric, expected_holder=expected)
    job.outcome.reasons = [asdict(c) for c in decision.checks]
    job.outcome.status = RetrainStatus.PROMOTED if decision.promoted else RetrainStatus.KEPT


def _record(job: _Job, pointer: dict | None = None) -> RetrainOutcome:
    """Write the decision, the accumulated-data pointer (when the pipeline ran) and the log entry,
    together, once the decision is taken: each file is complete before it replaces or extends the last."""
    outcome = asdict(job.outcome)
    Path(job.folder, "decision.json").write_text(json.dumps(outcome, indent=2, default=str))
    if pointer is not None:
        write_atomic(json.dumps(pointer), job.state / f"{job.dataset}-accumulated.json")
    with open(job.state / "decisions.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(outcome, default=str) + "\n")
    return job.outcome
