"""Prometheus metrics for the service.

One process (the default, and every test that builds apps in-process): each app gets a registry
of its own rather than the process-global default, so a test can build many apps in one process
without their metric names colliding or their counts mixing.

Several processes (`labline serve --workers N`): each worker answers only the connections it
accepts, so per-process counters would make `GET /metrics` report whichever worker took the
scrape's connection. When `PROMETHEUS_MULTIPROC_DIR` is set, prometheus_client keeps every
value in a memory-mapped file per process in that folder, and `render` merges all the files
with `MultiProcessCollector`: any worker answers with the totals of all workers. `labline
serve` creates a fresh private folder for this and removes it at exit; a folder reused across
runs would add the old runs' counts. In this mode all `ServiceMetrics` of one process share its
files (counts of apps built in the same process add up), and `_created` samples are not exported.
"""

from __future__ import annotations

import collections
import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.responses import Response

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The folder of the multiprocess metric files, or None for single-process metrics."""
    return os.environ.get(MULTIPROC_ENV) or None


class PrometheusText(Response):
    """`GET /metrics`'s answer: Prometheus text format 0.0.4, which every scraper reads. As the
    route's response class it is also what the OpenAPI document says the route sends."""

    media_type = "text/plain; version=0.0.4; charset=utf-8"


class ServiceMetrics:
    """Request counts and latency by endpoint and status; predictions by label, version and arm."""

    def __init__(self) -> None:
        folder = multiprocess_dir()
        self.multiprocess = folder is not None
        self.registry = CollectorRegistry()
        if self.multiprocess:
            _check_multiprocess(folder)
            # The values live in the folder's files, not in a registry: the metrics register
            # nowhere, and this registry only holds the collector that merges every process.
            MultiProcessCollector(self.registry, path=folder)
            owner = None
        else:
            owner = self.registry
        self.requests = Counter("labline_requests", "HTTP requests answered", ["endpoint", "status"], registry=owner)
        self.latency = Histogram(
            "labline_request_latency_seconds",
            "Time from request to answer",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=owner,
        )
        self.predictions = Counter(
            "labline_predictions", "Records scored", ["model_version", "arm", "label"], registry=owner
        )
        self.shadow_errors = Counter(
            "labline_shadow_errors", "Shadow scorings that failed", ["model_version"], registry=owner
        )
        self.log_rows = Counter("labline_request_log_rows", "Rows committed to the request log", registry=owner)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def count_predictions(self, model_version: str, arm: str, labels: list) -> None:
        """Count by label (a regression's values all count as `value`); Counter does the
        tallying in C, which matters for a 10,000-record batch."""
        for label, n in collections.Counter(labels).items():
            key = "value" if isinstance(label, float) else str(label)
            self.predictions.labels(model_version, arm, key).inc(n)

    def render(self) -> bytes:
        """Prometheus text format; in multiprocess mode, the sums over every process's files."""
        return generate_latest(self.registry)


def _check_multiprocess(folder: str) -> None:
    """Refuse a setup that would silently export nothing from this process."""
    if not os.path.isdir(folder):
        raise RuntimeError(
            f"{MULTIPROC_ENV}={folder!r} is not a folder; create an empty folder for the "
            f"metric files before the service starts, or unset {MULTIPROC_ENV} for "
            "single-process metrics"
        )
    # prometheus_client picks its value storage once, when it is first imported.
    if values.ValueClass is values.MutexValue:
        raise RuntimeError(
            f"{MULTIPROC_ENV} was set after prometheus_client was imported in this process, "
            "so its metrics are kept in memory and no other process could see them; set "
            f"{MULTIPROC_ENV} before anything imports prometheus_client"
        )
