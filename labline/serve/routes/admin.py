"""Admin endpoints, on only when the service was started with LABLINE_ADMIN_TOKEN set, and then
only for a request that carries it as a bearer token."""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the annotations.

import asyncio
import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from labline.serve.deployments import DeploymentError, check_same_inputs
from labline.serve.state import State, load_routes

bearer = HTTPBearer(auto_error=False)  # the checks below answer in the service's own words


async def require_admin(
    state: State, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """404 while admin endpoints are off; 401 without the right `Authorization: Bearer` token."""
    expected = state.settings.admin_token
    if not expected:
        raise HTTPException(404, "admin endpoints are off: start the service with LABLINE_ADMIN_TOKEN set")
    token = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(
            401,
            "Authorization: a valid 'Bearer <LABLINE_ADMIN_TOKEN>' header is required",
            headers={"WWW-Authenticate": "Bearer"},
        )


router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)])


@router.post("/reload")
async def reload(state: State):
    # Re-resolve the aliases and swap models without dropping requests; a 409 keeps the old ones.
    try:
        fresh = await asyncio.to_thread(load_routes, state.settings)
        check_same_inputs(state.routes.champion, fresh.champion, "reloaded champion")
    except DeploymentError as exc:
        message = f"reload refused, still serving the previous models: {exc}"
        return JSONResponse({"error": message}, status_code=409)
    for arm, deployment in fresh.all().items():
        await asyncio.to_thread(state.log.record_deployment, arm, deployment)
    state.swap(fresh)
    return {"status": "reloaded", "models": {arm: d.label for arm, d in fresh.all().items()}}
