"""The FastAPI app: `create_app(settings)` loads and verifies the models, opens the request log
and returns an app whose request schema is generated from the models' data set spec.

Built by a factory so that tests, `labline serve` and `--workers N` each build their own.
"""

# No `from __future__ import annotations`: FastAPI reads the generated body types from the
# handlers' annotations at route-definition time.

import asyncio
import hmac
import time
import uuid
from contextlib import asynccontextmanager
from itertools import repeat

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from labline.serve.deployments import DeploymentError, check_same_inputs, load_deployment
from labline.serve.limits import BodyLimitAndMetrics
from labline.serve.metrics import ServiceMetrics
import orjson

from labline.serve.request_log import RequestLog, Scoring, dumps, utc_now
from labline.serve.routing import Routes
from labline.serve.schemas import BatchAnswer, PredictAnswer, RecordSchema
from labline.serve.scoring import MicroBatcher, ShadowScorer, UnscorableRecord, score_and_encode, unscorable_message
from labline.serve.settings import ServeSettings

JSON = "application/json"


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
    return Routes(champion=champion, challenger=challenger, split=settings.split if challenger else 0.0,
                  shadow=shadow)


def _field(loc) -> str:
    parts = [p for p in loc if p != "body"]
    text = ""
    for part in parts:
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


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    settings = settings or ServeSettings.from_env()
    routes = load_routes(settings)
    spec = routes.champion.model.spec
    schema = RecordSchema(spec, settings.max_batch_records)
    metrics = ServiceMetrics()
    log = RequestLog(settings.request_log, settings.synchronous, settings.commit_window_ms)
    for arm, deployment in routes.all().items():
        log.record_deployment(arm, deployment)
    batcher = MicroBatcher()
    shadow = ShadowScorer(log, metrics=metrics)
    state = {"routes": routes, "reloads": 0}

    @asynccontextmanager
    async def lifespan(app):
        yield
        shadow.close()
        log.close()

    app = FastAPI(title=f"labline: {spec.name} model", lifespan=lifespan,
                  description="Predictions from the registered model artifact, every answer logged for replay.")
    app.state.settings, app.state.log, app.state.metrics, app.state.shadow = settings, log, metrics, shadow
    app.state.schema = schema
    app.state.routes = lambda: state["routes"]

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        problems = _problems(exc)
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
        return JSONResponse(status_code=422, content={"error": summary, "detail": problems})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = str(exc.detail)
        if exc.status_code == 400 and request.url.path.startswith("/predict"):
            message = f"body: {message} (expected UTF-8 JSON)"
        return JSONResponse(status_code=exc.status_code, content={"error": message}, headers=exc.headers)

    @app.get("/")
    async def welcome():
        champion = state["routes"].champion
        return {"service": "labline", "model": champion.lineage.get("name"), "dataset": spec.name,
                "model_version": champion.version, "artifact_sha256": champion.sha256,
                "endpoints": ["/predict", "/predict/batch", "/model", "/health", "/ready", "/metrics", "/docs"]}

    @app.get("/health")
    async def health():
        return {"status": "alive"}

    @app.get("/ready")
    async def ready():
        alive = not log.closed
        body = {"status": "ready" if alive else "request log closed",
                "models": {arm: d.label for arm, d in state["routes"].all().items()}}
        return JSONResponse(body, status_code=200 if alive else 503)

    @app.get("/model")
    async def model():
        current = state["routes"]
        return {"deployments": {arm: d.describe() for arm, d in current.all().items()},
                "split": current.split, "reloads": state["reloads"]}

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    def answer(request_id, prediction, probabilities, deployment, arm) -> dict:
        return {"request_id": request_id, "prediction": prediction, "probabilities": probabilities,
                "model_version": deployment.version, "artifact_sha256": deployment.sha256, "arm": arm}

    def route(request: Request, request_id: str):
        """Who answers: the routes now, the client key (X-Client-Id, else the request's id), its arm."""
        current = state["routes"]
        client_key = request.headers.get("x-client-id") or request_id
        arm = current.arm_for(client_key)
        return current, client_key, arm, current.deployment(arm)

    async def predict(record: schema.record_model, request: Request):  # type: ignore[name-defined]
        start = time.perf_counter()
        request_id = uuid.uuid4().hex
        current, client_key, arm, deployment = route(request, request_id)
        payload = schema.payload(record)
        try:
            prediction, probabilities, score_batch, index, scored_at = await batcher.score(deployment, payload)
        except UnscorableRecord as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        latency_ms = (time.perf_counter() - start) * 1000
        row = (request_id, index, None if client_key == request_id else client_key, dumps(payload), dumps(prediction),
               dumps(probabilities) if probabilities is not None else None, latency_ms, 0, None)
        await log.append([Scoring.by(deployment, arm, score_batch, scored_at, answers=[row])])
        metrics.log_rows.inc()
        metrics.count_predictions(deployment.label, arm, [prediction])
        if current.shadow is not None:
            shadow.submit(current.shadow, [(request_id, client_key, payload, None)])
        body = dumps(answer(request_id, prediction, probabilities, deployment, arm))
        return Response(body, media_type=JSON, headers={"X-Model-Version": deployment.label})

    async def predict_batch(request: Request):
        try:
            payloads = schema.batch_payloads(await request.body())
        except ValidationError as exc:  # re-raised under the body's location: the 422s read as for /predict
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
        start = time.perf_counter()
        batch_id = uuid.uuid4().hex
        # A batch is one request from one client: the whole batch takes the client's arm (by
        # X-Client-Id, else by the batch id), so it is scored in one model call and record i is
        # answered as request `<batch_id>-<i>`.
        current, client_key, arm, deployment = route(request, batch_id)
        # the model scores (and its outputs are encoded) in a thread while the payloads are encoded here
        scoring = asyncio.get_running_loop().run_in_executor(None, score_and_encode, deployment, payloads)
        payload_texts = list(map(bytes.decode, map(orjson.dumps, payloads)))  # plain dicts of str, float, None
        scored, predictions, probabilities = await scoring
        if scored.bad:
            return JSONResponse({"error": unscorable_message(f"records[{min(scored.bad)}]")}, status_code=422)
        latency_ms = (time.perf_counter() - start) * 1000
        committed = log.append([Scoring.by(deployment, arm, uuid.uuid4().hex, utc_now(), batch_id=batch_id,
                                           client_key=client_key, latency_ms=latency_ms,
                                           records=(payload_texts, predictions, probabilities))])
        # a large batch is being written in the log's thread now; the answer is written meanwhile,
        # joined in C from texts that are JSON already (the batch id is hex, the index a number)
        answers = ",".join(map("".join, zip(
            repeat(f'{{"request_id":"{batch_id}-'), map(str, range(len(payloads))), repeat('","prediction":'),
            predictions, repeat(',"probabilities":'), (repeat("null") if scored.probabilities is None else probabilities),
            repeat("}"))))
        head = orjson.dumps({"batch_id": batch_id, "model_version": deployment.version,
                             "artifact_sha256": deployment.sha256, "arm": arm})
        body = b"".join((head[:-1], b',"answers":[', answers.encode(), b"]}"))
        await committed
        metrics.log_rows.inc(len(payloads))
        metrics.count_predictions(deployment.label, arm, scored.predictions)
        if current.shadow is not None:
            shadow.submit(current.shadow, [(f"{batch_id}-{i}", client_key, p, batch_id) for i, p in enumerate(payloads)])
        return Response(body, media_type=JSON, headers={"X-Model-Version": deployment.label})

    app.post("/predict", response_model=PredictAnswer, summary="Score one record",
             responses={422: {"description": "a field is missing, extra, of the wrong type, not finite, or not an allowed category"},
                        413: {"description": "body over the size limit"}})(predict)
    batch_schema = schema.batch_model.model_json_schema(ref_template="#/components/schemas/{model}")
    batch_schema.pop("$defs", None)  # its record schema is in the components already, from /predict
    app.post("/predict/batch", response_model=BatchAnswer, summary="Score many records, one answer and log row each",
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": batch_schema}}}},
             responses={422: {"description": "an invalid record (the field names its index), an empty batch, or too many records"},
                        413: {"description": "body over the size limit"}})(predict_batch)

    @app.post("/admin/reload")
    async def reload(request: Request):
        if not settings.admin_token:
            return JSONResponse({"error": "admin endpoints are off: start the service with LABLINE_ADMIN_TOKEN set"},
                                status_code=404)
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), settings.admin_token.encode()):
            return JSONResponse({"error": "Authorization: a valid 'Bearer <LABLINE_ADMIN_TOKEN>' header is required"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        try:
            fresh = await asyncio.to_thread(load_routes, settings)
            check_same_inputs(state["routes"].champion, fresh.champion, "reloaded champion")
        except DeploymentError as exc:
            return JSONResponse({"error": f"reload refused, still serving the previous models: {exc}"}, status_code=409)
        for arm, deployment in fresh.all().items():
            await asyncio.to_thread(log.record_deployment, arm, deployment)
        state["routes"] = fresh  # one assignment: requests in flight keep the routes they started with
        state["reloads"] += 1
        return {"status": "reloaded", "models": {arm: d.label for arm, d in fresh.all().items()}}

    known = {"/", "/health", "/ready", "/model", "/metrics", "/predict", "/predict/batch", "/admin/reload",
             "/docs", "/openapi.json"}
    app.add_middleware(BodyLimitAndMetrics, max_body_bytes=settings.max_body_bytes, metrics=metrics, known_paths=known)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: settings come from LABLINE_SERVE_SETTINGS."""
    return create_app(ServeSettings.from_env())
