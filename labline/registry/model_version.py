"""ModelVersion: one registered model and where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelVersion:
    """A registered model with its lineage. `checks` holds the run's validation and audit results;
    `scope` is the data set it was trained on, where its aliases live.

    Example:
        >>> v = ModelVersion(version=1, name="torch-mlp", run_id="r", step="train_torch", dataset="iris",
        ...                  data_fingerprint="ab", git_sha=None, git_dirty=None, parameters={},
        ...                  metrics={"macro_f1": 0.97}, artifact_path="/m", artifact_sha256="cd",
        ...                  packages={}, task="classification", created="2026-11-23T19:00:00+00:00")
        >>> v.label
        'v1 torch-mlp'
    """

    version: int
    name: str
    run_id: str
    step: str
    dataset: str | None
    data_fingerprint: str | None
    git_sha: str | None
    git_dirty: bool | None
    parameters: dict[str, Any]
    metrics: dict[str, float]
    artifact_path: str
    artifact_sha256: str
    packages: dict[str, Any]
    task: str | None
    created: str
    aliases: list[str] = field(default_factory=list)
    registered: str = ""
    checks: dict[str, Any] = field(default_factory=dict)
    scope: str | None = None  # the data set whose aliases this version can hold (registry/scope.py)

    @property
    def label(self) -> str:
        return f"v{self.version} {self.name}"

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)
