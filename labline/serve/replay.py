"""Replay: load the exact model that answered a request and score the same input again.

A single request may have been scored together with others that arrived at the same moment
(micro-batching), so replay scores the whole group again, in the same order, and compares the
request's row exactly: the same label and bit-identical probabilities. When the model cannot
be loaded (artifact deleted, tampered, or the registry no longer has it) it says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labline.models.artifact import ArtifactError, LoadedModel, load_model
from labline.serve.deployments import Deployment
from labline.serve.request_log import find_requests, latest_deployment, scoring_group
from labline.serve.schemas import features_frame


class ReplayError(LookupError):
    """The request is not in the log."""


@dataclass
class Replay:
    request_id: str
    time: str
    payload: dict
    arm: str
    model_version: int | None
    artifact_sha256: str
    answered: dict  # prediction and probabilities as logged
    deployment: dict = field(default_factory=dict)  # deployed_at, artifact_path, lineage
    replayed: dict | None = None
    identical: bool = False
    reason: str | None = None  # why it could not be replayed, or how it differs

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def deployment_record(log: str | Path, artifact_sha256: str, before: str | None = None) -> dict:
    """The latest deployment of this artifact (at or before `before`): path, time, lineage."""
    return latest_deployment(log, artifact_sha256, before)


def load_answering_model(
    log: str | Path, model_version: int | None, artifact_sha256: str, registry_url: str | None = None
) -> LoadedModel:
    """The verified model with this hash: from the registry when it had a version, else from
    the folder it was deployed from. Raises ArtifactError with the reason it cannot."""
    if model_version is not None:
        from labline.registry import Registry, RegistryError

        try:
            _, model = Registry(url=registry_url).load_model(str(model_version))
        except RegistryError as exc:
            raise ArtifactError(f"model version {model_version} cannot be loaded: {exc}") from exc
    else:
        record = deployment_record(log, artifact_sha256)
        if not record:
            raise ArtifactError(f"no deployment of artifact {artifact_sha256[:12]} is recorded in the request log")
        model = load_model(record["artifact_path"])  # verifies every file's hash
    if model.sha256 != artifact_sha256:
        raise ArtifactError(
            f"the artifact found has SHA-256 {model.sha256}, but the request was answered by "
            f"{artifact_sha256}: it was replaced since"
        )
    return model


def replay(request_id: str, log: str | Path, registry_url: str | None = None, shadow: bool = False) -> Replay:
    """Reproduce one logged answer (or its shadow answer)."""
    rows = find_requests(log, [request_id], shadow=shadow)
    if rows.empty:
        kind = "shadow answer" if shadow else "request"
        raise ReplayError(f"no {kind} with id {request_id!r} in the request log {log}")
    row = rows.iloc[0]
    version = None if row["model_version"] is None or str(row["model_version"]) == "<NA>" else int(row["model_version"])
    result = Replay(
        request_id=request_id,
        time=row["time"].isoformat(),
        payload=row["payload"],
        arm=row["arm"],
        model_version=version,
        artifact_sha256=row["artifact_sha256"],
        answered={"prediction": row["prediction"], "probabilities": row["probabilities"]},
        deployment=deployment_record(log, row["artifact_sha256"], row["time"].isoformat()),
    )
    if row["error"]:
        result.reason = f"the logged answer is an error, nothing to reproduce: {row['error']}"
        return result
    try:
        model = load_answering_model(log, version, row["artifact_sha256"], registry_url)
    except ArtifactError as exc:
        result.reason = f"cannot replay: {exc}"
        return result
    _score_again(result, model, scoring_group(log, row["score_batch"], row["artifact_sha256"], shadow), row)
    return result


def _score_again(result: Replay, model: LoadedModel, group, row) -> None:
    """Score the request's model-call group again, in its order, and compare the request's answer."""
    payloads = list(group["payload"])
    index = int(row["score_index"])
    if list(group["score_index"]) != list(range(len(group))):
        result.reason = "some rows scored with this request are missing from the log; scored the request alone"
        payloads, index = [row["payload"]], 0
    deployment = Deployment(ref="replay", model=model, version=result.model_version, lineage={})
    predictions, probabilities = deployment.score(features_frame(model.spec, payloads))
    replayed_probs = dict(zip(model.labels, probabilities[index].tolist())) if probabilities is not None else None
    result.replayed = {"prediction": predictions[index], "probabilities": replayed_probs}
    same_prediction = result.replayed["prediction"] == result.answered["prediction"]
    same_probs = replayed_probs == result.answered["probabilities"]
    result.identical = bool(same_prediction and same_probs)
    if not result.identical:
        result.reason = "the replayed answer differs from the logged one"
