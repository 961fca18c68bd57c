"""Prometheus metrics. With PROMETHEUS_MULTIPROC_DIR set, several uvicorn workers share them."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Metric,
    generate_latest,
    start_http_server,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

HTTP_REQUESTS = Counter(
    "brandlift_http_requests_total", "HTTP requests by route", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "brandlift_http_request_duration_seconds",
    "HTTP request latency by route",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
EVENTS_INGESTED = Counter("brandlift_events_ingested_total", "Events stored, by type", ["type"])
EVENTS_DUPLICATES = Counter(
    "brandlift_events_duplicates_total", "Re-sent events recognised by event_id"
)
EVENTS_REJECTED = Counter(
    "brandlift_events_rejected_total",
    "Rejected event batches, by reason (the HTTP status answered)",
    ["reason"],
)
CACHE_REQUESTS = Counter(
    "brandlift_cache_requests_total", "Serving lookups by outcome (hit, miss, fallback)", ["result"]
)
# Gauges read from shared state (database, cache) at scrape time: with several processes the
# most recently written value is the true one ("max" would keep a stale figure alive).
MODEL_AGE = Gauge(
    "brandlift_model_age_seconds", "Age of the live model", multiprocess_mode="mostrecent"
)
MODEL_VERSION = Gauge(
    "brandlift_model_version", "Version of the live model", multiprocess_mode="mostrecent"
)
MODEL_USERS = Gauge(
    "brandlift_model_users",
    "Users with a published list in the live model",
    multiprocess_mode="mostrecent",
)
MODEL_ITEMS = Gauge(
    "brandlift_model_items", "Catalog items the live model covers", multiprocess_mode="mostrecent"
)
REBUILD_DURATION = Gauge(
    "brandlift_last_rebuild_duration_seconds",
    "Duration of the last rebuild",
    multiprocess_mode="mostrecent",
)
LAST_REBUILD_STATUS = Gauge(
    "brandlift_last_rebuild_status",
    "1 for the final status of the most recent finished rebuild, 0 for the others",
    ["status"],
    multiprocess_mode="mostrecent",
)
LAST_REBUILD_FINISHED = Gauge(
    "brandlift_last_rebuild_finished_timestamp_seconds",
    "When the most recent rebuild finished (unix time)",
    multiprocess_mode="mostrecent",
)
WORKER_HEARTBEAT_AGE = Gauge(
    "brandlift_worker_heartbeat_age_seconds",
    "Seconds since a worker last wrote its heartbeat (-1: none)",
    multiprocess_mode="mostrecent",
)
RATE_LIMITED = Counter("brandlift_rate_limited_total", "Requests answered 429 (rate limit)")
USERS_ERASED = Counter("brandlift_users_erased_total", "Users erased on request")
REBUILDS = Counter("brandlift_rebuilds_total", "Rebuilds by final status", ["status"])


REALTIME_QUEUE = Gauge(
    "brandlift_realtime_queue_users",
    "Shoppers waiting for a real-time update",
    multiprocess_mode="mostrecent",
)
REALTIME_LAG = Gauge(
    "brandlift_realtime_lag_seconds",
    "Age of the oldest shopper waiting for a real-time update",
    multiprocess_mode="mostrecent",
)
REALTIME_DROPPED = Counter(
    "brandlift_realtime_dropped_total", "Dirty marks refused because the queue was full"
)
REALTIME_UPDATES = Counter("brandlift_realtime_updates_total", "Lists republished in real time")


def _registry() -> CollectorRegistry:
    """This process's registry, or one aggregating every process when multiprocess is on."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return DEFAULT_REGISTRY


class WorkerRegistry:
    """What a worker process exports: its counters (rebuilds, real-time updates...) and the
    process and Python collectors. The service gauges (model age, queue lag...) are left to the
    API's /metrics, which reads them from shared state at scrape time; a worker's own copies
    were never set and would only shadow them."""

    def collect(self) -> Iterator[Metric]:
        for family in _registry().collect():
            if family.type == "counter" or not family.name.startswith("brandlift_"):
                yield family


def serve_worker_metrics(port: int, addr: str = "0.0.0.0") -> Any:
    """Serve the worker's figures on http://addr:port/metrics (a daemon thread); returns the
    server, whose shutdown() stops it."""
    server, _thread = start_http_server(port, addr=addr, registry=WorkerRegistry())
    return server


def render_metrics() -> tuple[bytes, str]:
    """Exposition text for /metrics, aggregated across processes when multiprocess is on."""
    return generate_latest(_registry()), CONTENT_TYPE_LATEST


def counter_totals(name: str, label: str) -> dict[str, float]:
    """A counter's totals by one label, summed over every process (for the status page)."""
    totals: dict[str, float] = {}
    sample_name = name if name.endswith("_total") else f"{name}_total"
    for family in _registry().collect():
        for sample in family.samples:
            if sample.name == sample_name and label in sample.labels:
                value = sample.labels[label]
                totals[value] = totals.get(value, 0.0) + sample.value
    return totals


# Bound label children, looked up once: `.labels()` costs about as much as the update itself
# on the hottest routes. The label sets are bounded (method x route template x status).
@functools.cache
def _request_counter(method: str, template: str, status: int) -> Any:
    return HTTP_REQUESTS.labels(method, template, str(status))


@functools.cache
def cache_outcome(outcome: str) -> Any:
    """The cache-requests counter for one outcome: hit, miss or fallback."""
    return CACHE_REQUESTS.labels(outcome)


@functools.cache
def _latency_histogram(method: str, template: str) -> Any:
    return HTTP_LATENCY.labels(method, template)


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times requests by their route template."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status_holder: dict[str, Any] = {"status": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            # Unmatched paths share one label so scanners cannot blow up cardinality.
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            _request_counter(method, template, status_holder["status"]).inc()
            _latency_histogram(method, template).observe(time.perf_counter() - start)
