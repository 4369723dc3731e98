"""What the service is: the welcome, liveness and readiness, the deployments, the metrics."""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the annotations.

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


@router.get("/model")
async def model(state: State):
    current = state.routes
    return {
        "deployments": {arm: d.describe() for arm, d in current.all().items()},
        "split": current.split,
        "reloads": state.reloads,
    }


@router.get("/metrics", response_class=PrometheusText, summary="Prometheus metrics (text format)")
async def prometheus(state: State):
    return PrometheusText(state.metrics.render())
