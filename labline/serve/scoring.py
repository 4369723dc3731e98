"""Scoring records with a deployment: single requests micro-batched, shadow traffic off the
response path.

Single-record requests that are ready in the same turn of the event loop are scored in one
model call: under concurrency the pandas and scikit-learn overhead is paid once per group
instead of once per request. Each row remembers its group (`score_batch`, `score_index`), so
replay scores the same rows together and reproduces the answer bit for bit.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from labline.serve.deployments import Deployment
from labline.serve.request_log import RequestLog, dumps, utc_now
from labline.serve.routing import SHADOW
from labline.serve.schemas import RecordSchema, features_frame


class UnscorableRecord(ValueError):
    """The model's output for a record is not a finite number (the input is far from anything
    it was trained on); the client gets a 422, never a NaN."""


def score_payloads(deployment: Deployment, schema: RecordSchema, payloads: list[dict]) -> tuple[list, list | None, set[int]]:
    """Predictions, per-row probability dicts (label -> float), and the rows whose output is not finite."""
    # the deployment's own spec: a shadow built for another schema fails here instead of guessing
    predictions, probabilities = deployment.score(features_frame(deployment.model.spec, payloads))
    if probabilities is None:
        values = np.asarray(predictions, dtype=np.float64)
        return predictions, None, set(np.flatnonzero(~np.isfinite(values)).tolist())
    bad = set(np.flatnonzero(~np.isfinite(probabilities).all(axis=1)).tolist())
    labels = deployment.model.labels
    return predictions, [dict(zip(labels, row)) for row in probabilities.tolist()], bad


def unscorable_message(field: str = "record") -> str:
    return f"{field}: the model's output for this input is not a finite number; check the values are plausible"


class MicroBatcher:
    """`await batcher.score(deployment, payload)` -> (prediction, probabilities, score_batch, index)."""

    def __init__(self, schema: RecordSchema):
        self.schema = schema
        self._pending: dict[int, tuple[Deployment, list]] = {}
        self._scheduled = False

    async def score(self, deployment: Deployment, payload: dict) -> tuple[Any, dict | None, str, int]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.setdefault(id(deployment), (deployment, []))[1].append((payload, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        pending, self._pending, self._scheduled = self._pending, {}, False
        for deployment, items in pending.values():
            score_batch = uuid.uuid4().hex
            try:
                predictions, probabilities, bad = score_payloads(deployment, self.schema, [p for p, _ in items])
            except Exception as exc:  # every request in the group learns why
                for _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for index, (_, future) in enumerate(items):
                if index in bad and not future.done():
                    future.set_exception(UnscorableRecord(unscorable_message()))
                elif not future.done():
                    future.set_result((predictions[index], probabilities[index] if probabilities else None,
                                       score_batch, index))


class ShadowScorer:
    """Scores copies of answered requests with the shadow deployment in a background thread.

    The answer has already been sent when this runs; a failure is logged as the shadow row's
    `error`, and when too much shadow work is queued new work is dropped (and counted) rather
    than slowing the service down.
    """

    def __init__(self, schema: RecordSchema, log: RequestLog, max_pending_records: int = 100_000, metrics=None):
        self.schema = schema
        self.log = log
        self.metrics = metrics
        self.max_pending = max_pending_records
        self.pending = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labline-shadow")

    def submit(self, deployment: Deployment, items: list[tuple[str, str, dict, str | None]]) -> None:
        """items: (request_id, client_key, payload, batch_id)."""
        with self._lock:
            if self.pending + len(items) > self.max_pending:
                self.dropped += len(items)
                return
            self.pending += len(items)
        self._executor.submit(self._run, deployment, items)

    def _run(self, deployment: Deployment, items: list) -> None:
        start = time.perf_counter()
        score_batch = uuid.uuid4().hex
        try:
            try:
                predictions, probabilities, bad = score_payloads(deployment, self.schema, [i[2] for i in items])
                errors = [unscorable_message() if i in bad else None for i in range(len(items))]
            except Exception as exc:  # a broken shadow must never reach the client
                predictions, probabilities = [None] * len(items), None
                errors = [f"{type(exc).__name__}: {exc}"] * len(items)
            if self.metrics is not None and any(errors):
                self.metrics.shadow_errors.labels(deployment.label).inc(sum(1 for e in errors if e))
            latency_ms = (time.perf_counter() - start) * 1000
            now = utc_now()
            rows = [
                (request_id, now, client_key, dumps(payload),
                 None if errors[i] else dumps(predictions[i]),
                 dumps(probabilities[i]) if probabilities and not errors[i] else None,
                 deployment.version, deployment.sha256, SHADOW, latency_ms, 1, errors[i], batch_id, score_batch, i)
                for i, (request_id, client_key, payload, batch_id) in enumerate(items)
            ]
            self.log.submit(rows)
        except Exception:  # the log refused the shadow rows (closing, disk full): shadow work is best effort
            self.dropped += len(items)
        finally:
            with self._lock:
                self.pending -= len(items)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
