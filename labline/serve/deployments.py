"""A deployment: one verified model artifact, the registry version it came from, its lineage
and when this service loaded it.

Models come either from the registry (an alias or version number) or straight from an
artifact folder; both are hash-verified on load (`load_model` checks every file's SHA-256).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from labline.models.artifact import ArtifactError, LoadedModel, load_model


class DeploymentError(RuntimeError):
    """A model that cannot be deployed: unknown reference, tampered artifact, wrong schema."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass
class Deployment:
    """A loaded model as the service uses it."""

    ref: str  # what was asked for: an alias, a version number, or a folder
    model: LoadedModel
    version: int | None
    lineage: dict[str, Any]
    deployed_at: str = field(default_factory=now_iso)
    # scikit-learn and torch objects are not documented as thread-safe for concurrent calls
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def sha256(self) -> str:
        return self.model.sha256

    @property
    def label(self) -> str:
        """What the `X-Model-Version` header says: the version number, or the artifact hash."""
        return str(self.version) if self.version is not None else f"sha256:{self.sha256[:12]}"

    def score(self, frame) -> tuple[list[Any], np.ndarray | None]:
        """Predictions and probabilities for a frame, from the artifact's own objects.

        Classification computes the probabilities once and takes the argmax in label order,
        which is exactly what `LoadedModel.predict` does, at half the cost.
        """
        with self.lock:
            if self.model.kind == "sklearn":
                # `frame` holds exactly the spec's features in order (schemas.features_frame), so
                # the fitted Pipeline is called directly, skipping LoadedModel's column selection
                return self._score_pipeline(frame)
            if self.model.spec.task == "classification":
                probabilities = np.asarray(self.model.predict_proba(frame), dtype=np.float64)
                labels = np.asarray(self.model.labels, dtype=object)[probabilities.argmax(axis=1)]
                return labels.tolist(), probabilities
            values = np.asarray(self.model.predict(frame), dtype=np.float64)
            return values.tolist(), None

    def _score_pipeline(self, frame) -> tuple[list[Any], np.ndarray | None]:
        pipeline = self.model._model
        if self.model.spec.task == "classification":
            probabilities = np.asarray(pipeline.predict_proba(frame), dtype=np.float64)
            labels = np.asarray(self.model.labels, dtype=object)[probabilities.argmax(axis=1)]
            return labels.tolist(), probabilities
        return np.asarray(pipeline.predict(frame), dtype=np.float64).tolist(), None

    def describe(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "version": self.version,
            "name": self.lineage.get("name"),
            "artifact_sha256": self.sha256,
            "artifact_path": str(self.model.path),
            "kind": self.model.kind,
            "task": self.model.spec.task,
            "dataset": self.model.spec.name,
            "labels": self.model.labels,
            "deployed_at": self.deployed_at,
            "lineage": self.lineage,
        }


def _registry(url: str | None):
    try:
        from labline.registry import Registry
    except ImportError as exc:  # pragma: no cover - the registry ships with labline
        raise DeploymentError(f"the model registry is not available ({exc}); serve a folder with --model-dir") from exc
    return Registry(url=url)


def load_deployment(ref: str, registry_url: str | None = None, folder: bool | None = None) -> Deployment:
    """Load `ref`: an artifact folder when `folder` is true or `ref` is an existing folder,
    else a registry alias or version number."""
    path = Path(ref)
    if folder or (folder is None and path.is_dir()):
        try:
            model = load_model(path)
        except ArtifactError as exc:
            raise DeploymentError(str(exc)) from exc
        estimator = model.metadata.get("estimator")
        lineage = {
            "name": f"{model.kind}-{estimator}" if estimator else model.kind,
            "source": "folder",
            "dataset": model.spec.name,
            "data_fingerprint": model.metadata.get("data_fingerprint"),
            "artifact_path": str(path.resolve()),
            "metadata": model.metadata,
        }
        return Deployment(ref=ref, model=model, version=None, lineage=lineage)
    from labline.registry import RegistryError

    try:
        version, model = _registry(registry_url).load_model(ref)
    except (RegistryError, ArtifactError) as exc:
        hint = ""
        if "neither a version number nor an alias" in str(exc):  # e.g. `labline run` registered, nobody promoted
            hint = (
                ". Promote a registered version first (`labline promote`, through the gate), "
                "or serve one directly with `--alias VERSION` or `--model-dir DIR`"
            )
        raise DeploymentError(f"cannot deploy {ref!r}: {exc}{hint}") from exc
    lineage = {
        "name": version.name,
        "source": "registry",
        "run_id": version.run_id,
        "step": version.step,
        "dataset": version.dataset,
        "data_fingerprint": version.data_fingerprint,
        "git_sha": version.git_sha,
        "git_dirty": version.git_dirty,
        "metrics": version.metrics,
        "parameters": version.parameters,
        "artifact_path": version.artifact_path,
        "created": str(version.created),
        "aliases": list(version.aliases or []),
    }
    return Deployment(ref=ref, model=model, version=int(version.version), lineage=lineage)


def check_same_inputs(champion: Deployment, other: Deployment, role: str) -> None:
    """Every arm answers the same request schema; refuse a model that needs other columns."""
    if list(other.model.spec.features) != list(champion.model.spec.features):
        raise DeploymentError(
            f"the {role} {other.ref!r} expects features {other.model.spec.features}, but the champion "
            f"{champion.ref!r} expects {champion.model.spec.features}; both must serve the same schema"
        )
