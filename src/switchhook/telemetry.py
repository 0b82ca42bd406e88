"""Metrics (Prometheus) and structured logs: counters the runtime hands to services, sources and workers."""

from __future__ import annotations

import bisect
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from switchhook.delivery.pipeline import AttemptReport
from switchhook.delivery.worker import Observer

_LOG_EXTRAS = ("delivery_id", "hook_id", "domain", "status_code", "error", "source")


LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class DeliveryCounters:
    """Per-delivery counts kept as plain ints and exposed at scrape time.

    prometheus_client takes a lock per increment; a delivery touches three series, so on the hot path
    we count in the event loop (single-threaded) and let /metrics read the totals.
    """

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self.deliveries: dict[str, int] = {}
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.latency_sum = 0.0

    def collect(self) -> Iterator[Any]:
        attempts = CounterMetricFamily(
            "switchhook_delivery_attempts", "Delivery attempts by outcome", labels=["outcome"]
        )
        for outcome, value in sorted(self.attempts.items()):
            attempts.add_metric([outcome], value)
        deliveries = CounterMetricFamily("switchhook_deliveries", "Finished deliveries by outcome", labels=["outcome"])
        for outcome, value in sorted(self.deliveries.items()):
            deliveries.add_metric([outcome], value)
        buckets, running = [], 0
        for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), self.latency_buckets, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else str(bound), running))
        latency = HistogramMetricFamily(
            "switchhook_delivery_latency_seconds", "From event accepted to 2xx received", labels=[]
        )
        latency.add_metric([], buckets, self.latency_sum)
        yield from (attempts, deliveries, latency)


class Metrics(Observer):
    """One registry per process (several workers each expose their own /metrics)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_received = Counter("switchhook_events_received", "Events received", ["source"], registry=r)
        self.events_dropped = Counter("switchhook_events_dropped", "Events dropped", ["source", "reason"], registry=r)
        self.counters = DeliveryCounters()
        r.register(self.counters)
        self.queue_depth = Gauge("switchhook_queue_depth", "Pending deliveries in the store", registry=r)
        self.requests_in_flight = Gauge("switchhook_requests_in_flight", "Outgoing requests in flight", registry=r)
        self.source_connected = Gauge(
            "switchhook_source_connected", "1 when a source is connected", ["source"], registry=r
        )
        # No domain label: an attacker would choose its values; the log names the domain, once per minute.
        self.regex_budget_exhausted = Counter(
            "switchhook_regex_budget_exhausted",
            "Events whose reg filters were cut short: the event's or the domain's matching time was used up",
            ["budget"],
            registry=r,
        )

    # EventCounters (services.events)
    def received(self, source: str, count: int) -> None:
        self.events_received.labels(source).inc(count)

    def dropped(self, source: str, reason: str, count: int) -> None:
        self.events_dropped.labels(source, reason).inc(count)

    # RegexBudgets (domain.filters): `budget` is "event" or "domain"
    def regex_cut(self, budget: str) -> None:
        self.regex_budget_exhausted.labels(budget).inc()

    # Observer (delivery.worker)
    def attempt(self, report: AttemptReport, latency_s: float | None) -> None:
        counters = self.counters
        status = report.finish.status
        if status == "pending":
            counters.attempts["retry"] = counters.attempts.get("retry", 0) + 1
        else:
            counters.attempts[status] = counters.attempts.get(status, 0) + 1
            counters.deliveries[status] = counters.deliveries.get(status, 0) + 1
        if latency_s is not None:
            counters.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS_S, latency_s)] += 1
            counters.latency_sum += latency_s

    def in_flight(self, count: int) -> None:
        self.requests_in_flight.set(count)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _LOG_EXTRAS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Delivery successes are per request: keep them at debug unless asked for.
    logging.getLogger("switchhook.delivery").setLevel(max(logging.getLogger().level, logging.INFO))
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
