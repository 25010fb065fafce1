"""Prometheus metrics for /metrics (prometheus-client), one registry per OneGrid (no global state).

Gauges are read from the store at scrape time (cases by status, notification queue, outbox depth
and age, webhook updates waiting); counters come from the sender's and the relay's statistics;
request latency is a histogram observed by the API's middleware, labelled by a fixed set of methods
and the route TEMPLATE (never the raw path), each with "other" for the rest, so made-up methods and
paths cannot add series: the number of series is bounded by the routes the code declares.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from services.metrics_queries import store_counts

if TYPE_CHECKING:
    from onegrid.app import OneGrid

log = logging.getLogger(__name__)


class StoreCollector(Collector):
    def __init__(self, app: OneGrid) -> None:
        self.app = app

    def collect(self) -> Any:
        try:
            counts = store_counts(self.app.ctx)
        except Exception:  # noqa: BLE001 - a scrape must answer; the up metric says the store is down
            log.exception("metrics: the store did not answer")
            up = GaugeMetricFamily("onegrid_store_up", "1 when the case store answered this scrape")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("onegrid_store_up", "1 when the case store answered this scrape")
        up.add_metric([], 1)
        yield up
        g = GaugeMetricFamily("onegrid_cases", "Cases by status", labels=["status"])
        for status, n in counts.cases:
            g.add_metric([str(status)], n)
        yield g
        g = GaugeMetricFamily("onegrid_notifications", "Notification rows by status (queue depth: pending)",
                              labels=["status"])
        for status, n in counts.notifications:
            g.add_metric([str(status)], n)
        yield g
        g = GaugeMetricFamily("onegrid_outbox_events", "Outbox rows by status (depth: pending; dead letters: dead)",
                              labels=["status"])
        for status, n in counts.outbox["by_status"].items():
            g.add_metric([status], n)
        yield g
        g = GaugeMetricFamily("onegrid_outbox_oldest_pending_age_seconds", "Age of the oldest unsent outbox row")
        g.add_metric([], counts.outbox["oldest_pending_age_s"])
        yield g
        g = GaugeMetricFamily("onegrid_webhook_updates", "Stored Telegram updates by state", labels=["state"])
        for state, n in counts.webhook_updates:
            g.add_metric([str(state)], n)
        yield g
        sender = self.app.sender
        c = CounterMetricFamily("onegrid_telegram_errors", "Bot API errors met by the sender, by kind",
                                labels=["kind"])
        if sender is not None:
            for kind, n in sorted(sender.stats.by_error.items()):
                c.add_metric([kind], n)
        yield c
        c = CounterMetricFamily("onegrid_telegram_sent", "Messages the sender delivered")
        c.add_metric([], sender.stats.sent if sender is not None else 0)
        yield c
        relay = getattr(self.app, "relay", None)
        c = CounterMetricFamily("onegrid_upstream_relay_outcomes", "Outbox sends by outcome", labels=["outcome"])
        if relay is not None:
            for outcome, n in sorted(relay.stats.by_outcome.items()):
                c.add_metric([outcome], n)
        yield c
        # Several processes (docs/DEPLOY.md): which singleton loops this one runs; summed over processes, 1 each.
        g = GaugeMetricFamily("onegrid_leader", "1 where this process runs the loop, 0 where it stands by",
                              labels=["loop"])
        for kind, leadership in sorted(getattr(self.app, "leaders", {}).items()):
            g.add_metric([kind], 1 if leadership.leader else 0)
        yield g


# The methods a client of this API uses; anything else (made-up or WebDAV verbs) is counted as "other".
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def observe_request(latency: Histogram, method: str, route: Any, status: int, seconds: float) -> None:
    """One request in the latency histogram, with labels from a bounded set (see the module docstring)."""
    template = getattr(route, "path", None) or "other"  # no matched route: a made-up path
    status_label = str(status) if 100 <= status <= 599 else "other"
    latency.labels(method if method in METHODS else "other", template, status_label).observe(seconds)


class ObserveLatency:
    """Pure ASGI middleware: every HTTP request's latency into `latency` (a BaseHTTPMiddleware would
    wrap each request in a task and a stream: about a tenth of a small request's CPU)."""

    def __init__(self, app: ASGIApp, *, latency: Histogram) -> None:
        self.app, self.latency = app, latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:  # the router put the matched route into this scope; an error counts as the 500 it becomes
            observe_request(self.latency, scope["method"], scope.get("route"), status, time.perf_counter() - started)


def make_registry(app: OneGrid) -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(app))
    latency = Histogram("onegrid_http_request_duration_seconds", "API request latency by route",
                        labelnames=("method", "route", "status"), registry=registry,
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
    return registry, latency
