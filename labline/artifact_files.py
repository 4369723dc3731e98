"""A model artifact's files and their hashes: the part of the artifact contract that needs only hashlib.

The manifest records every file's SHA-256 and the artifact's identity is the manifest's own
SHA-256. Writing and loading models (labline.models.artifact) and the registry's verification
before a promotion (labline.registry.integrity) share these functions, and the registry's
commands stay fast: verifying a folder imports neither scikit-learn nor PyTorch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

FORMAT = "labline-model/1"
MANIFEST = "manifest.json"


class ArtifactError(RuntimeError):
    """An artifact that is missing, tampered with, or not a labline model."""


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def artifact_sha256(path: str | Path) -> str:
    """The artifact's identity: the SHA-256 of its manifest (which holds every file's hash)."""
    return file_sha256(Path(path) / MANIFEST)


def verify_artifact(path: str | Path) -> dict:
    """Every file's SHA-256 against the artifact's manifest; ArtifactError names the missing or changed file."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.exists():
        raise ArtifactError(f"{manifest_path} is missing: {path} is not a labline model artifact")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{manifest_path} is not valid JSON: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{manifest_path} has format {manifest.get('format')!r}, expected {FORMAT!r}")
    for name, expected in manifest["files"].items():
        file = path / name
        if not file.exists():
            raise ArtifactError(f"artifact file {file} is missing")
        if file_sha256(file) != expected:
            raise ArtifactError(f"artifact file {file} does not match its recorded SHA-256 (tampered or corrupted)")
    return manifest
