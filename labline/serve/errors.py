"""The service's error answers: every 4xx is `{"error": "<field>: <what is wrong>"}`, and a
422 adds `detail`, one entry per problem, so a client learns which field to fix and how.

The same shapes are the OpenAPI document's: `documented(...)` builds a route's `responses` from
them, so a status the service answers is a status its document lists, with the body it sends."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorAnswer(BaseModel):
    """Every 4xx/5xx the service sends itself: the field at fault and what is wrong with it."""

    error: str


class Problem(BaseModel):
    field: str
    message: str
    type: str | None = None


class InvalidAnswer(ErrorAnswer):
    """A 422: the summary, and one entry per problem."""

    detail: list[Problem]


# Statuses of any request with a body: BodyLimitAndMetrics answers them before any route, and
# the JSON parser a 400 for bytes that are not UTF-8.
BODY_ERRORS = {
    400: "the Content-Length header is not a number, or the body is not UTF-8 JSON",
    413: "the body is over the size limit (declared or streamed)",
}


def documented(statuses: dict[int, str]) -> dict[int, dict]:
    """A route's OpenAPI `responses` for these error statuses, each with the body it really has."""
    return {
        status: {"description": text, "model": InvalidAnswer if status == 422 else ErrorAnswer}
        for status, text in statuses.items()
    }


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = _problems(exc)
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    return JSONResponse(status_code=422, content={"error": summary, "detail": problems})


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = str(exc.detail)
    if exc.status_code == 400 and request.url.path.startswith("/predict"):
        message = f"body: {message} (expected UTF-8 JSON)"
    return JSONResponse(status_code=exc.status_code, content={"error": message}, headers=exc.headers)


def _field(loc) -> str:
    """A pydantic location as a client writes it: `records[3].sepal_length`."""
    text = ""
    for part in (p for p in loc if p != "body"):
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _problem(error: dict) -> dict:
    """One pydantic error as `{field, message, type}`; a JSON syntax error is the body's, at a character."""
    message, loc = error.get("msg", "invalid"), error.get("loc", ())
    if error.get("type") == "json_invalid":
        at = f" at character {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
        message, loc = f"malformed JSON{at}: {error.get('ctx', {}).get('error', message)}", ()
    elif error.get("type") == "model_attributes_type" and len(loc) <= 1:
        message = "expected a JSON object (send Content-Type: application/json)"
    return {"field": _field(loc), "message": str(message), "type": error.get("type")}


def _problems(exc: RequestValidationError) -> list[dict]:
    return [_problem(error) for error in exc.errors()]
