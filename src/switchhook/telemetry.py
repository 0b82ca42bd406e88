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

from switchhook.core.failover import PAUSED
from switchhook.delivery.pipeline import AttemptReport
from switchhook.delivery.worker import Observer
from switchhook.store.base import AttemptLeg

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
        self.failovers: dict[tuple[str, str], int] = {}  # (trigger, outcome), see failover_labels

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
        failovers = CounterMetricFamily(
            "switchhook_failovers",
            "Requests sent to hooks' fallback URLs (docs/fallback.md), by trigger (primary_failed: after the primary's"
            " no answer or 5xx; primary_paused: its circuit is open) and outcome (delivered: 2xx; answered: another"
            " status; no_answer: none, or refused by the egress guard)",
            labels=["trigger", "outcome"],
        )
        for (trigger, outcome), value in sorted(self.failovers.items()):
            failovers.add_metric([trigger, outcome], value)
        yield from (attempts, deliveries, latency, failovers)


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
        if report.legs:
            labels = failover_labels(report.legs[-1])
            if labels is not None:
                counters.failovers[labels] = counters.failovers.get(labels, 0) + 1

    def in_flight(self, count: int) -> None:
        self.requests_in_flight.set(count)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


def failover_labels(leg: AttemptLeg) -> tuple[str, str] | None:
    """The switchhook_failovers series of an attempt's last request, when it went to the fallback."""
    if leg.leg != "fallback":
        return None
    trigger = "primary_paused" if leg.reason == PAUSED else "primary_failed"
    status = leg.status_code
    outcome = "no_answer" if status is None else "delivered" if 200 <= status < 300 else "answered"
    return trigger, outcome


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
