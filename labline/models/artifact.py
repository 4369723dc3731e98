"""Model artifacts: a folder with the fitted model, its schema, labels and file hashes.

Layout (the contract between the training notebooks, the registry and the service; README's
"A model artifact"):
    manifest.json     format, kind, spec, labels, metadata, and the SHA-256 of every other file
    pipeline.skops    scikit-learn: preprocessing + estimator (skops, never a bare pickle)
    preprocess.skops  PyTorch: the fitted preprocessing
    state_dict.pt     PyTorch: the network's weights (loaded with weights_only=True)
    config.json       PyTorch: the network's constructor arguments

Loading verifies every hash before deserialising anything, so a tampered or missing file is
refused with its name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio

from labline.artifact_files import FORMAT, MANIFEST, ArtifactError, artifact_sha256, verify_artifact
from labline.artifact_files import file_sha256 as _sha256
from labline.data.frame import Rows, model_frame
from labline.data.spec import DatasetSpec
from labline.models.deterministic import dump_skops


def _write_manifest(out: Path, kind: str, spec: DatasetSpec, labels: list[str], metadata: dict) -> str:
    files = {p.name: _sha256(p) for p in sorted(out.iterdir()) if p.name != MANIFEST and p.is_file()}
    manifest = {
        "format": FORMAT,
        "kind": kind,
        "spec": spec.to_dict(),
        "labels": list(labels),
        "metadata": metadata,
        "files": files,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    return artifact_sha256(out)


def _prepare(out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():
        if stale.is_file():
            stale.unlink()
    return out


def save_sklearn_model(out: str | Path, pipeline: Any, spec: DatasetSpec, metadata: dict | None = None) -> str:
    """Save a fitted scikit-learn Pipeline; returns the artifact hash."""
    out = _prepare(out)
    dump_skops(pipeline, out / "pipeline.skops")
    labels = [str(c) for c in getattr(pipeline, "classes_", [])] if spec.task == "classification" else []
    return _write_manifest(out, "sklearn", spec, labels, metadata or {})


def save_torch_model(
    out: str | Path,
    net: Any,
    preprocessor: Any,
    config: dict,
    spec: DatasetSpec,
    labels: list[str],
    metadata: dict | None = None,
) -> str:
    """Save a PyTorch Net (state dict + constructor config) with its fitted preprocessing."""
    import torch

    out = _prepare(out)
    dump_skops(preprocessor, out / "preprocess.skops")
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save(state, out / "state_dict.pt")
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return _write_manifest(out, "torch", spec, list(labels), metadata or {})


def _load_skops(file: Path) -> Any:
    """Load a skops file, trusting only types from the libraries labline builds models with."""
    untrusted = sio.get_untrusted_types(file=file)
    allowed_prefixes = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.", "labline.")
    refused = [t for t in untrusted if not t.startswith(allowed_prefixes)]
    if refused:
        raise ArtifactError(f"{file} contains types labline does not load: {refused}")
    return sio.load(file, trusted=untrusted)


@dataclass
class LoadedModel:
    """A verified model, with one interface whatever its kind (scikit-learn style)."""

    path: Path
    kind: str
    spec: DatasetSpec
    labels: list[str]
    metadata: dict
    sha256: str
    _model: Any = field(repr=False)
    _preprocess: Any = field(default=None, repr=False)

    @property
    def precision(self) -> np.dtype:
        """The float type the model computes in: float32 for a PyTorch network, float64 for scikit-learn."""
        return np.dtype(np.float32 if self.kind == "torch" else np.float64)

    def _frame(self, rows: Rows) -> pd.DataFrame:
        """The model's input, through the one conversion training used (labline.data.frame)."""
        return model_frame(self.spec, rows)

    def _torch_outputs(self, rows: Rows) -> np.ndarray:
        import torch

        features = np.asarray(self._preprocess.transform(self._frame(rows)), dtype=np.float32)
        device = next(self._model.parameters()).device
        with torch.no_grad():
            return self._model(torch.from_numpy(features).to(device)).cpu().numpy()

    def predict_proba(self, rows: Rows) -> np.ndarray:
        """Class probabilities, columns in `labels` order."""
        if self.spec.task != "classification":
            raise ValueError("predict_proba is for classification models; this one does regression")
        if self.kind == "sklearn":
            return self._model.predict_proba(self._frame(rows))
        import torch

        return torch.softmax(torch.from_numpy(self._torch_outputs(rows)), dim=1).numpy()

    def predict(self, rows: Rows) -> np.ndarray:
        """Label names (classification) or values (regression)."""
        if self.spec.task == "classification":
            return np.asarray(self.labels, dtype=object)[self.predict_proba(rows).argmax(axis=1)]
        if self.kind == "sklearn":
            return self._model.predict(self._frame(rows))
        return self._torch_outputs(rows)[:, 0] * self.metadata.get("target_scale", 1.0) + self.metadata.get(
            "target_mean", 0.0
        )


def _torch_device(name: str):
    """`name` as a torch device this machine has; ArtifactError naming it otherwise."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ArtifactError(f"device {name!r} is not a torch device (expected e.g. 'cpu', 'cuda', 'cuda:1')") from exc
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise ArtifactError(f"device {name!r} is not available: this machine has {count} CUDA device(s)")
    elif device.type != "cpu":
        raise ArtifactError(f"device {name!r}: models load on 'cpu' or a CUDA device ('cuda', 'cuda:N')")
    return device


def load_model(path: str | Path, device: str = "cpu") -> LoadedModel:
    """Verify an artifact's hashes, then load it; a PyTorch network is placed on `device` (a
    scikit-learn model ignores it). Raises ArtifactError naming the bad file or device."""
    path = Path(path)
    manifest = verify_artifact(path)
    spec = DatasetSpec.from_dict(manifest["spec"])
    common = dict(
        path=path,
        kind=manifest["kind"],
        spec=spec,
        labels=manifest["labels"],
        metadata=manifest["metadata"],
        sha256=artifact_sha256(path),
    )
    if manifest["kind"] == "sklearn":
        return LoadedModel(_model=_load_skops(path / "pipeline.skops"), **common)
    if manifest["kind"] == "torch":
        import torch

        from labline.models.torch_net import Net

        target = _torch_device(device)
        config = json.loads((path / "config.json").read_text())
        net = Net(**config)
        net.load_state_dict(torch.load(path / "state_dict.pt", map_location="cpu", weights_only=True))
        net.to(target).eval()
        return LoadedModel(_model=net, _preprocess=_load_skops(path / "preprocess.skops"), **common)
    raise ArtifactError(f"{path / MANIFEST}: unknown model kind {manifest['kind']!r}")
