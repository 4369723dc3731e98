"""The service's error answers: every 4xx is `{"error": "<field>: <what is wrong>"}`, and a
422 adds `detail`, one entry per problem, so a client learns which field to fix and how."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


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


def _problems(exc: RequestValidationError) -> list[dict]:
    problems = []
    for error in exc.errors():
        message = error.get("msg", "invalid")
        if error.get("type") == "json_invalid":
            message = f"malformed JSON: {error.get('ctx', {}).get('error', message)}"
        elif error.get("type") == "model_attributes_type" and len(error.get("loc", ())) <= 1:
            message = "expected a JSON object (send Content-Type: application/json)"
        problems.append({"field": _field(error.get("loc", ())), "message": str(message), "type": error.get("type")})
    return problems
