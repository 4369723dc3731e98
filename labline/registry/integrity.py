"""Is a version's artifact the one that was registered? The one rule, used by promote, alias and load_model.

The registry records the SHA-256 of the artifact's manifest, and the manifest holds every file's
SHA-256; so the manifest is checked against the registry, then each file against the manifest.
"""

from __future__ import annotations

from pathlib import Path

from labline.artifact_files import MANIFEST, ArtifactError, artifact_sha256, verify_artifact
from labline.registry.db import RegistryError
from labline.registry.gate import ARTIFACT_RULE, Check
from labline.registry.model_version import ModelVersion


def verify(version: ModelVersion) -> None:
    """Recompute every file's SHA-256; RegistryError names the file that is missing or differs."""
    path = Path(version.artifact_path)
    manifest = path / MANIFEST
    if not manifest.is_file():
        raise RegistryError(f"{version.label}: artifact file {manifest} is missing (the model was moved or deleted)")
    found = artifact_sha256(path)
    if found != version.artifact_sha256:
        raise RegistryError(
            f"{version.label}: artifact file {manifest} has SHA-256 {found}, registered "
            f"{version.artifact_sha256}: refused (tampered or replaced)"
        )
    try:
        verify_artifact(path)
    except ArtifactError as exc:
        raise RegistryError(f"{version.label}: {exc}: refused") from exc


def artifact_check(version: ModelVersion) -> Check:
    """`verify` as a gate check: a failure is never accepted as a risk."""
    try:
        verify(version)
    except RegistryError as exc:
        return Check(ARTIFACT_RULE, False, str(exc))
    return Check(ARTIFACT_RULE, True, f"every file matches the registered SHA-256 ({version.artifact_sha256[:12]})")
