"""Where the monitor's two samples come from.

The reference is the training data of the model being monitored: the training rows of the
snapshot its run's explore step wrote, found through the run (`--reference RUN`) or through
the registry's champion (its run id and step). The current sample is production input: the
request log over a time window (payloads, the predictions served, and any labels sent back as
feedback), or a batch file of raw rows (derived into features with the data set's own
function, labels from its target column when present).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from labline.data.spec import DatasetSpec
from labline.glue import MissingGlue, ModelGlue, SnapshotGlue
from runner.contracts import RunManifest

WINDOW = re.compile(r"^(?P<n>\d+(\.\d+)?)(?P<unit>[mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
TRAINERS = ("train_sklearn", "train_torch")


class SourceError(ValueError):
    """A reference or a current sample that cannot be found or read."""


@dataclass
class Reference:
    """The model under watch and the data it was trained on."""

    run_id: str
    step: str
    model_dir: Path
    train: pd.DataFrame  # the training rows (features and target)
    test: pd.DataFrame  # the held-out rows: the reference level of performance
    spec: DatasetSpec
    label: str = ""  # e.g. "v3 sklearn-random_forest" or the run and step
    metrics: dict = field(default_factory=dict)  # what the trainer glued


@dataclass
class Current:
    """Production input over the window, with what is known about it."""

    source: str
    features: pd.DataFrame
    predictions: np.ndarray | None = None  # as served (request log); None: recompute with the model
    labels: pd.Series | None = None  # ground truth when it has arrived (feedback or a target column)
    detail: str = ""


def parse_window(text: str) -> timedelta:
    """`30m`, `12h`, `7d`, `2w` -> timedelta."""
    match = WINDOW.match(text.strip())
    if not match:
        raise SourceError(f"window {text!r} is not a number followed by m, h, d or w (e.g. 7d)")
    return timedelta(**{UNITS[match["unit"]]: float(match["n"])})


def _run_manifest(run: str, runs_root: Path) -> dict:
    path = Path(run)
    if (path / "manifest.json").exists():
        return json.loads((path / "manifest.json").read_text())
    from runner.errors import RunnerError
    from runner.records import find_run

    try:
        return find_run(runs_root, run).manifest
    except RunnerError as exc:
        raise SourceError(str(exc)) from exc


def _model_step(manifest: RunManifest, step: str | None) -> tuple[str, ModelGlue]:
    """`step`, or the first trainer step that glued a model folder, read through ModelGlue."""
    steps = manifest.steps
    candidates = [step] if step else [s for s in steps if s.startswith(TRAINERS)]
    chosen = next((s for s in candidates if s in steps and ModelGlue.complete_in(steps[s])), None)
    if chosen is None:
        raise SourceError(
            f"run {manifest.run_id} has no trained model "
            f"(looked for a model_dir glued by {candidates or list(TRAINERS)})"
        )
    return chosen, ModelGlue.read(chosen, steps[chosen])


def _snapshot(manifest: RunManifest) -> SnapshotGlue:
    explore = next((s for s, body in manifest.steps.items() if SnapshotGlue.MARKERS & set(body.glued)), None)
    if explore is None:
        raise SourceError(f"run {manifest.run_id} has no data snapshot (no step glued snapshot_path)")
    try:
        return SnapshotGlue.read(explore, manifest.steps[explore])
    except MissingGlue as exc:
        raise SourceError(str(exc)) from exc


def reference_from_run(run: str, runs_root: str | Path, step: str | None = None, label: str = "") -> Reference:
    """The reference of run `run` (an id, a prefix, `latest`, or a run folder): its trained model
    (`step`, default the first trainer that produced one) and its snapshot's split."""
    from labline.data.snapshot import read_snapshot, split_frames

    manifest = RunManifest.from_dict(_run_manifest(run, Path(runs_root)))
    chosen, model = _model_step(manifest, step)
    snapshot = _snapshot(manifest)
    spec = DatasetSpec.from_file(snapshot.spec_path)
    train, test = split_frames(read_snapshot(snapshot.snapshot_path))
    scraps = manifest.steps[chosen].glued
    metrics = {k: v for k, v in scraps.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return Reference(
        manifest.run_id,
        chosen,
        Path(model.model_dir),
        train,
        test,
        spec,
        label or f"run {manifest.run_id} step {chosen}",
        metrics,
    )


def reference_from_model(
    model_dir: str | Path, dataset: str, target: str = "", test_size: float = 0.2, seed: int = 42
) -> Reference:
    """The reference of a model folder trained on `dataset` with the pipeline's split (what the
    notebooks do when run on their own in JupyterLab)."""
    from labline.data.snapshot import prepare_snapshot, split_frames
    from labline.paths import project_file

    path = project_file(model_dir)
    if not (Path(path) / "manifest.json").exists():
        raise SourceError(
            f"no model artifact at {model_dir}: run notebooks/train_sklearn.ipynb first, "
            "or give a run id or registry:champion as the reference"
        )
    frame, spec = prepare_snapshot(dataset, target, test_size, seed)
    train, test = split_frames(frame)
    return Reference("", "", Path(path), train, test, spec, f"model {model_dir}")


def reference_from_registry(
    ref: str = "champion", registry_url: str | None = None, runs_root: str | Path | None = None
) -> Reference:
    """The reference of a registered model (an alias or a version number)."""
    from labline.paths import runs_root as default_runs_root
    from labline.registry import Registry

    try:
        version = Registry(registry_url).resolve(ref)
    except Exception as exc:  # the registry's own message says what is missing
        raise SourceError(f"cannot resolve {ref!r} in the model registry: {exc}") from exc
    root = Path(runs_root or default_runs_root())
    run_dir = next(
        (p for p in Path(version.artifact_path).parents if (p / "manifest.json").exists() and p.name == version.run_id),
        None,
    )
    return reference_from_run(str(run_dir) if run_dir else version.run_id, root, version.step, version.label)


def derive(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Raw rows -> model features with the data set's own derivation, when it declares one, typed
    by the one conversion training and serving use (labline.data.frame): the window is compared
    with the training rows value for value."""
    from labline.data.datasets import BUILTIN, _module
    from labline.data.frame import with_model_dtypes

    if spec.name in BUILTIN and hasattr(_module(spec.name), "derive_features"):
        frame = _module(spec.name).derive_features(frame)
    return with_model_dtypes(spec, frame)


def current_from_file(path: str | Path, spec: DatasetSpec) -> Current:
    """A batch file of raw rows; its target column, when present, gives the labels."""
    from labline.data.datasets import BUILTIN, DatasetError, _module
    from labline.data.validate import read_batch

    try:
        frame = derive(read_batch(path, spec), spec)
    except DatasetError as exc:
        raise SourceError(str(exc)) from exc
    labels = frame[spec.target] if spec.target in frame.columns else None
    if labels is not None and spec.name in BUILTIN and hasattr(_module(spec.name), "in_scope"):
        # The model was trained and evaluated on in-scope rows only (Airbnb: price 10..350);
        # its error is judged on those, while drift looks at every row it would be asked about.
        labels = labels.where(_module(spec.name).in_scope(frame))
    return Current(str(path), frame, labels=labels, detail=f"{len(frame)} rows from {path}")


def current_from_heldout(reference: Reference) -> Current:
    """The reference's own held-out rows: a window that should look healthy (a self-check)."""
    labels = reference.test[reference.spec.target] if reference.spec.target in reference.test.columns else None
    return Current(
        "heldout",
        reference.test.reset_index(drop=True),
        labels=None if labels is None else labels.reset_index(drop=True),
        detail=f"{len(reference.test)} held-out rows of the training run",
    )


def current_from_requests(
    log: str | Path,
    spec: DatasetSpec,
    window: timedelta | None,
    now: datetime | None = None,
    version: int | None = None,
) -> Current:
    """Requests answered in the window (shadow answers left out), with feedback labels if any."""
    from labline.serve.request_log import expand_payloads, feedback_labels, read_requests

    since = (now or datetime.now(UTC)) - window if window else None
    try:
        requests = read_requests(log, since=since, version=version)
    except FileNotFoundError as exc:
        raise SourceError(f"{exc}; start `labline serve` or pass --source FILE") from exc
    requests = requests[requests["error"].isna()] if "error" in requests.columns else requests
    features = derive(expand_payloads(requests), spec)
    predictions = None
    if len(requests):
        values = (
            pd.to_numeric(requests["prediction"], errors="coerce")
            if spec.task == "regression"
            else requests["prediction"].astype(str)
        )
        predictions = np.asarray(values)
    labels = None
    feedback = feedback_labels(log)  # {} for an older log without a feedback table
    if feedback and len(requests):
        known = requests["request_id"].map(feedback)
        if known.notna().any():
            labels = pd.to_numeric(known, errors="coerce") if spec.task == "regression" else known
    span = f"since {since.isoformat(timespec='seconds')}" if since else "all time"
    return Current(
        "requests",
        features.reset_index(drop=True),
        predictions,
        None if labels is None else labels.reset_index(drop=True),
        f"{len(requests)} requests {span} from {log}",
    )
