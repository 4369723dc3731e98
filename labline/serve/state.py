"""What every endpoint of one service shares: its settings, the deployments answering now, the
request schema, the request log, metrics, the micro-batcher and the shadow scorer.

One `ServiceState` per app (on `app.state.service`); endpoints receive it through FastAPI's
dependency injection (`state: State`), so tests and `--workers N` each build their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from labline.serve.deployments import Deployment, check_same_inputs, load_deployment
from labline.serve.metrics import ServiceMetrics
from labline.serve.request_log import RequestLog
from labline.serve.routing import Routes
from labline.serve.schemas import RecordSchema
from labline.serve.scoring import MicroBatcher, ShadowScorer
from labline.serve.settings import ServeSettings


def load_routes(settings: ServeSettings) -> Routes:
    """Resolve and verify every deployment the settings name (raises DeploymentError)."""
    folder = True if settings.model_dir else None
    champion = load_deployment(settings.model_dir or settings.alias, settings.registry_url, folder)
    challenger = shadow = None
    if settings.challenger:
        challenger = load_deployment(settings.challenger, settings.registry_url)
        check_same_inputs(champion, challenger, "challenger")
    if settings.shadow:
        shadow = load_deployment(settings.shadow, settings.registry_url)
    split = settings.split if challenger else 0.0
    return Routes(champion=champion, challenger=challenger, split=split, shadow=shadow)


@dataclass
class ServiceState:
    settings: ServeSettings
    routes: Routes  # replaced whole on reload: a request in flight keeps the routes it started with
    schema: RecordSchema
    log: RequestLog
    metrics: ServiceMetrics
    batcher: MicroBatcher
    shadow: ShadowScorer
    reloads: int = 0

    @classmethod
    def open(cls, settings: ServeSettings) -> ServiceState:
        """Load and verify the models, open the request log and record what is deployed."""
        routes = load_routes(settings)
        schema = RecordSchema(routes.champion.model.spec, settings.max_batch_records)
        metrics = ServiceMetrics()
        log = RequestLog(settings.request_log, settings.synchronous, settings.commit_window_ms)
        for arm, deployment in routes.all().items():
            log.record_deployment(arm, deployment)
        return cls(settings, routes, schema, log, metrics, MicroBatcher(), ShadowScorer(log, metrics=metrics))

    def who_answers(self, request: Request, request_id: str) -> tuple[Routes, str, str, Deployment]:
        """The routes now, the client key (X-Client-Id, else the request's id), its arm and model."""
        current = self.routes
        client_key = request.headers.get("x-client-id") or request_id
        arm = current.arm_for(client_key)
        return current, client_key, arm, current.deployment(arm)

    def swap(self, fresh: Routes) -> None:
        self.routes = fresh  # one assignment, see `routes`
        self.reloads += 1

    def close(self) -> None:
        self.shadow.close()
        self.log.close()


async def service_state(request: Request) -> ServiceState:
    """The dependency endpoints declare (async: no thread hop on the hot path)."""
    return request.app.state.service


State = Annotated[ServiceState, Depends(service_state)]
