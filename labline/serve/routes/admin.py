"""Admin endpoints, on only when the service was started with LABLINE_ADMIN_TOKEN set, and then
only for a request that carries it as a bearer token.

A request without the right token gets the same 401 whether admin is off or the token is wrong:
the route is in the OpenAPI document, so a 404 would contradict it, and one answer for both cases
tells a caller without the token nothing about how the service is configured."""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the annotations.

import asyncio
import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from labline.serve.deployments import DeploymentError, check_same_inputs
from labline.serve.errors import BODY_ERRORS, documented
from labline.serve.state import State, load_routes

bearer = HTTPBearer(auto_error=False)  # the checks below answer in the service's own words


async def require_admin(
    state: State, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """401 unless admin endpoints are on and the request carries their `Authorization: Bearer` token."""
    expected = state.settings.admin_token
    token = credentials.credentials if credentials is not None else ""
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(
            401,
            "Authorization: a 'Bearer <LABLINE_ADMIN_TOKEN>' header with the token the service was started "
            "with is required (admin endpoints are off when LABLINE_ADMIN_TOKEN is unset)",
            headers={"WWW-Authenticate": "Bearer"},
        )


ADMIN_ERRORS = documented(
    {
        **BODY_ERRORS,
        401: "admin endpoints are off, or the bearer token is missing or wrong",
        409: "the fresh models were refused (their inputs differ); the previous ones still serve",
    }
)
router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)], responses=ADMIN_ERRORS)


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
