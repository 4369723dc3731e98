"""The FastAPI app: `create_app(settings)` loads and verifies the models, opens the request log
and returns an app whose request schema is generated from the models' data set spec.

Built by a factory so that tests, `labline serve` and `--workers N` each build their own. The
endpoints live in `labline.serve.routes`; what they share is one `ServiceState`.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from labline.serve.errors import install_error_handlers
from labline.serve.limits import BodyLimitAndMetrics
from labline.serve.routes import admin, info
from labline.serve.routes.predict import predict_router
from labline.serve.settings import ServeSettings
from labline.serve.state import ServiceState, load_routes

__all__ = ["app_from_env", "create_app", "load_routes"]


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    settings = settings or ServeSettings.from_env()
    state = ServiceState.open(settings)

    @asynccontextmanager
    async def lifespan(app):
        yield
        state.close()

    app = FastAPI(
        title=f"labline: {state.schema.spec.name} model",
        lifespan=lifespan,
        description="Predictions from the registered model artifact, every answer logged for replay.",
    )
    app.state.service = state
    install_error_handlers(app)
    app.include_router(info.router)
    app.include_router(predict_router(state.schema))
    app.include_router(admin.router)
    app.add_middleware(
        BodyLimitAndMetrics,
        max_body_bytes=settings.max_body_bytes,
        metrics=state.metrics,
        known_paths=known_paths(app),
    )
    return app


def known_paths(app: FastAPI) -> set[str]:
    """Every path the app answers, for the metrics' `endpoint` label (any other path counts as
    `other`, so scanners cannot grow the label set): the paths of its OpenAPI document, which
    lists every route of every included router, and the documentation's own pages."""
    pages = (app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
    return set(app.openapi()["paths"]) | {page for page in pages if page}


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: settings come from LABLINE_SERVE_SETTINGS."""
    return create_app(ServeSettings.from_env())
