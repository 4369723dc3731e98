"""What the service is: the welcome, liveness and readiness, the deployments, the metrics."""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the annotations.

import asyncio
import functools

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from labline.serve.metrics import PrometheusText
from labline.serve.state import State

router = APIRouter()

# What the welcome lists for a client to call (admin and the schema itself are left out).
ENDPOINTS = ["/predict", "/predict/batch", "/model", "/health", "/ready", "/metrics", "/docs"]


@router.get("/")
async def welcome(state: State):
    champion = state.routes.champion
    return {
        "service": "labline",
        "model": champion.lineage.get("name"),
        "dataset": state.schema.spec.name,
        "model_version": champion.version,
        "artifact_sha256": champion.sha256,
        "endpoints": ENDPOINTS,
    }


@router.get("/health")
async def health():
    return {"status": "alive"}


@router.get("/ready", responses={503: {"description": "the request log is closed: no answers until restarted"}})
async def ready(state: State):
    alive = not state.log.closed
    body = {
        "status": "ready" if alive else "request log closed",
        "models": {arm: d.label for arm, d in state.routes.all().items()},
    }
    return JSONResponse(body, status_code=200 if alive else 503)


@functools.cache
def _registry(url: str | None):
    """One registry per URL for the service's life: opening one checks its schema under the write lock."""
    from labline.registry import Registry

    return Registry(url)


def _accepted_risks(registry_url: str | None, versions: dict[str, int | None]) -> dict[str, dict | None]:
    """Each arm's accepted risk (the newest `promote --accept` of its version), read from the registry."""
    if not any(v is not None for v in versions.values()):
        return dict.fromkeys(versions)
    try:
        registry = _registry(registry_url)
        found = {arm: registry.accepted_risks(version=v) if v is not None else [] for arm, v in versions.items()}
    except Exception as exc:  # the registry cannot be read now: say so, do not fail the description
        return dict.fromkeys(versions, {"unknown": f"the registry could not be read: {exc}"})
    return {arm: risks[0].to_dict() if risks else None for arm, risks in found.items()}


@router.get("/model")
async def model(state: State):
    current = state.routes
    deployments = {arm: d.describe() for arm, d in current.all().items()}
    versions = {arm: d.version for arm, d in current.all().items()}
    risks = await asyncio.to_thread(_accepted_risks, state.settings.registry_url, versions)
    for arm, risk in risks.items():
        deployments[arm]["accepted_risk"] = risk
    return {"deployments": deployments, "split": current.split, "reloads": state.reloads}


@router.get("/metrics", response_class=PrometheusText, summary="Prometheus metrics (text format)")
async def prometheus(state: State):
    return PrometheusText(state.metrics.render())
