"""Prometheus metrics (prometheus_client), one registry per app: what the service did, how
long requests took, and the trials by status."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class TrialsByStatus(Collector):
    """rung_trials{status}: counted in the database at each scrape (`counts` answers None
    while the service has no database yet)."""

    def __init__(self, counts: Callable[[], dict[str, int] | None]):
        self.counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("rung_trials", "Trials by status, all studies", labels=["status"])
        counts = self.counts()
        if counts is not None:
            for status in ("pending", "running", "completed", "failed"):
                gauge.add_metric([status], counts.get(status, 0))
        yield gauge


class Metrics:
    def __init__(self, trial_counts: Callable[[], dict[str, int] | None]):
        self.registry = CollectorRegistry()
        r = self.registry
        self.asks = Counter("rung_asks", "Answers to ask, by status", ["status"], registry=r)
        self.tells = Counter(
            "rung_tells", "Tells, by the trial's status after", ["status"], registry=r
        )
        self.reports = Counter("rung_reports", "Epoch reports stored", registry=r)
        self.heartbeats = Counter("rung_heartbeats", "Leases renewed by heartbeat", registry=r)
        self.lease_expiries = Counter("rung_lease_expiries", "Leases found expired", registry=r)
        self.latency = Histogram(
            "rung_request_seconds",
            "Request latency",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        r.register(TrialsByStatus(trial_counts))


class RequestTimer:
    """Pure ASGI middleware observing each request's latency by route template."""

    def __init__(self, app: Any, *, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(scope["method"], path).observe(
                time.perf_counter() - started
            )
