"""Scoring: `/predict` (one record) and `/predict/batch` (many, one model call). Every answer
is committed to the request log before it is sent.

The router is built per app by `predict_router(schema)`: the body type of `/predict` is the
record model generated from the data set's spec, so it cannot be a module-level route.
"""

# No `from __future__ import annotations`: FastAPI reads the generated body type from the
# handler's annotations when the route is defined.

import asyncio
import time
import uuid
from itertools import repeat

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from labline.serve.errors import BODY_ERRORS, documented
from labline.serve.request_log import Scoring, dumps, utc_now
from labline.serve.schemas import BatchAnswer, PredictAnswer, RecordSchema
from labline.serve.scoring import Scored, UnscorableRecord, score_and_encode, unscorable_message
from labline.serve.state import ServiceState, State

JSON = "application/json"
PREDICT_ERRORS = documented(
    {
        **BODY_ERRORS,
        422: "malformed JSON, or a field missing, extra, of the wrong type, not finite, not an allowed category, "
        "or a record the model scores as NaN",
    }
)
BATCH_ERRORS = documented(
    {
        **BODY_ERRORS,
        422: "malformed JSON, an invalid record (the field names its index), an empty batch, or too many records",
    }
)


def predict_router(schema: RecordSchema) -> APIRouter:
    """`/predict` and `/predict/batch` for this schema's records."""
    router = APIRouter()

    @router.post("/predict", response_model=PredictAnswer, summary="Score one record", responses=PREDICT_ERRORS)
    async def predict(record: schema.record_model, request: Request, state: State):  # type: ignore[name-defined]
        return await answer_one(state, request, schema.payload(record))

    batch_schema = schema.batch_model.model_json_schema(ref_template="#/components/schemas/{model}")
    batch_schema.pop("$defs", None)  # its record schema is in the components already, from /predict
    body = {"requestBody": {"required": True, "content": {JSON: {"schema": batch_schema}}}}

    @router.post(
        "/predict/batch",
        response_model=BatchAnswer,
        summary="Score many records, one answer and log row each",
        openapi_extra=body,
        responses=BATCH_ERRORS,
    )
    async def predict_batch(request: Request, state: State):
        try:
            payloads = schema.batch_payloads(await request.body())
        except ValidationError as exc:  # re-raised under the body's location: the 422s read as for /predict
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
        return await answer_batch(state, request, payloads)

    return router


async def answer_one(state: ServiceState, request: Request, payload: dict) -> Response:
    """Score one record (micro-batched with the others of this moment), log it, then answer."""
    start = time.perf_counter()
    request_id = uuid.uuid4().hex
    current, client_key, arm, deployment = state.who_answers(request, request_id)
    try:
        prediction, probabilities, score_batch, index, scored_at = await state.batcher.score(deployment, payload)
    except UnscorableRecord as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    latency_ms = (time.perf_counter() - start) * 1000
    probability_text = dumps(probabilities) if probabilities is not None else None
    key = None if client_key == request_id else client_key
    row = (request_id, index, key, dumps(payload), dumps(prediction), probability_text, latency_ms, 0, None)
    await state.log.append([Scoring.by(deployment, arm, score_batch, scored_at, answers=[row])])
    state.metrics.log_rows.inc()
    state.metrics.count_predictions(deployment.label, arm, [prediction])
    if current.shadow is not None:
        state.shadow.submit(current.shadow, [(request_id, client_key, payload, None)])
    body = {
        "request_id": request_id,
        "prediction": prediction,
        "probabilities": probabilities,
        "model_version": deployment.version,
        "artifact_sha256": deployment.sha256,
        "arm": arm,
    }
    return Response(dumps(body), media_type=JSON, headers={"X-Model-Version": deployment.label})


async def answer_batch(state: ServiceState, request: Request, payloads: list[dict]) -> Response:
    """Score a batch in one model call and log one row per record; record i is `<batch_id>-<i>`.

    A batch is one request from one client: the whole batch takes the client's arm (by
    X-Client-Id, else by the batch id). The model scores (and its outputs are encoded) in a
    thread while the payloads are encoded here; the answer is written while the log commits.
    """
    start = time.perf_counter()
    batch_id = uuid.uuid4().hex
    current, client_key, arm, deployment = state.who_answers(request, batch_id)
    scoring = asyncio.get_running_loop().run_in_executor(None, score_and_encode, deployment, payloads)
    payload_texts = list(map(bytes.decode, map(orjson.dumps, payloads)))  # plain dicts of str, float, None
    scored, predictions, probabilities = await scoring
    if scored.bad:
        return JSONResponse({"error": unscorable_message(f"records[{min(scored.bad)}]")}, status_code=422)
    latency_ms = (time.perf_counter() - start) * 1000
    records = (payload_texts, predictions, probabilities)
    scoring_row = Scoring.by(deployment, arm, uuid.uuid4().hex, utc_now(), batch_id=batch_id,
                             client_key=client_key, latency_ms=latency_ms, records=records)  # fmt: skip
    committed = state.log.append([scoring_row])
    head = {"batch_id": batch_id, "model_version": deployment.version, "artifact_sha256": deployment.sha256, "arm": arm}
    body = batch_answer(head, scored, predictions, probabilities)
    await committed
    state.metrics.log_rows.inc(len(payloads))
    state.metrics.count_predictions(deployment.label, arm, scored.predictions)
    if current.shadow is not None:
        copies = [(f"{batch_id}-{i}", client_key, p, batch_id) for i, p in enumerate(payloads)]
        state.shadow.submit(current.shadow, copies)
    return Response(body, media_type=JSON, headers={"X-Model-Version": deployment.label})


def batch_answer(head: dict, scored: Scored, predictions: list[str], probabilities: list[str | None]) -> bytes:
    """The batch's answer, joined in C from texts that are JSON already (the batch id is hex,
    the index a number): no per-record bytecode for a 10,000-record batch."""
    answers = ",".join(
        map(
            "".join,
            zip(
                repeat(f'{{"request_id":"{head["batch_id"]}-'),
                map(str, range(len(predictions))),
                repeat('","prediction":'),
                predictions,
                repeat(',"probabilities":'),
                (repeat("null") if scored.probabilities is None else probabilities),
                repeat("}"),
            ),
        )
    )
    opening = orjson.dumps(head)
    return b"".join((opening[:-1], b',"answers":[', answers.encode(), b"]}"))
