"""Prometheus metrics for the service, in a registry of the app's own.

A registry per app (not the process-global default) lets tests build many apps in one process.
With `--workers N` each worker counts its own requests; scrape each or run one worker per
container, as Prometheus's multiprocess caveats describe.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    """Request counts and latency by endpoint and status; predictions by label, version and arm."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("labline_requests", "HTTP requests answered", ["endpoint", "status"],
                                registry=self.registry)
        self.latency = Histogram("labline_request_latency_seconds", "Time from request to answer",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.predictions = Counter("labline_predictions", "Records scored",
                                   ["model_version", "arm", "label"], registry=self.registry)
        self.shadow_errors = Counter("labline_shadow_errors", "Shadow scorings that failed",
                                     ["model_version"], registry=self.registry)
        self.log_rows = Counter("labline_request_log_rows", "Rows committed to the request log",
                                registry=self.registry)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def count_predictions(self, model_version: str, arm: str, labels: list) -> None:
        counts: dict[str, int] = {}
        for label in labels:
            key = str(label) if not isinstance(label, float) else "value"
            counts[key] = counts.get(key, 0) + 1
        for label, n in counts.items():
            self.predictions.labels(model_version, arm, label).inc(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)
