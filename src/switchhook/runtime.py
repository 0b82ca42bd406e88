"""Composition root: picks the store, sources and sender, builds the services, runs the modes, one shutdown path."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from switchhook import __version__
from switchhook.api.app import create_app
from switchhook.config import Settings
from switchhook.core.breaker import Breakers
from switchhook.core.errors import Unavailable
from switchhook.core.events import Event
from switchhook.core.filters import RegexBudgets
from switchhook.delivery.egress import EgressPolicy, parse_networks
from switchhook.delivery.pipeline import DeliveryPipeline
from switchhook.delivery.sender import Sender
from switchhook.delivery.worker import DeliveryWorker
from switchhook.ingest.routing import Layout, resolve_layouts
from switchhook.ingest.source import EventSource, Sink
from switchhook.services.alerts import AlertsService
from switchhook.services.auth import AuthService
from switchhook.services.catalogue import CatalogueService
from switchhook.services.container import Services
from switchhook.services.deliveries import DeliveriesService
from switchhook.services.domains import DomainsService
from switchhook.services.events import EventsService
from switchhook.services.hooks import HooksService
from switchhook.services.index import HookIndex
from switchhook.services.limits import RateLimiter
from switchhook.services.login_guard import PasswordChecks
from switchhook.services.stats import StatsService
from switchhook.store.base import HookRow, Store
from switchhook.telemetry import Metrics

logger = logging.getLogger("switchhook.runtime")

PURGE_EVERY_S = 3600.0
GAUGE_EVERY_S = 5.0


def build_store(settings: Settings) -> Store:
    if settings.uses_postgres:
        from switchhook.store.postgres import PostgresStore

        return PostgresStore(settings.database_url, settings.database_schema)
    from switchhook.store.sqlite import SqliteStore

    return SqliteStore(settings.sqlite_path)


def amqp_layouts(settings: Settings) -> tuple[Layout, Layout | None]:
    """The mod_amqp routing-key layouts of the events and CC exchanges; ValueError naming the bad setting."""
    try:
        return resolve_layouts(settings.amqp_format_fields, settings.amqp_cc_format_fields)
    except ValueError as exc:
        raise ValueError(f"SWITCHHOOK_AMQP_FORMAT_FIELDS / SWITCHHOOK_AMQP_CC_FORMAT_FIELDS: {exc}") from None


class Runtime:
    """Everything one process runs. `api` serves the REST API; `worker` delivers and consumes sources."""

    def __init__(self, settings: Settings, *, api: bool = True, worker: bool = True) -> None:
        self.settings = settings
        self.api_enabled = api
        self.worker_enabled = worker
        self.metrics = Metrics()
        self.store: Store = build_store(settings)
        self.index = HookIndex(
            settings.hook_limits,
            RegexBudgets(settings.regex_budget, on_exhausted=self.metrics.regex_cut),
            max_regexes_per_domain=settings.regex_max_per_domain,
        )
        # Built by start(), which needs the store (migrations, the token secret, the hooks) first.
        self.services: Services | None = None
        self.worker: DeliveryWorker | None = None
        # switchhook's own alerts (docs/alerts.md): the worker's, and every process's hooks the index disables.
        self.alerts: AlertsService | None = None
        # Hooks the index disabled before the alerts service was built (the first reload): told to it once it is.
        self._disabled_early: list[tuple[HookRow, str]] | None = []
        self.index.on_disabled(self._hook_disabled)
        self.sources: list[EventSource] = []
        self._sender: Sender | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def app(self) -> FastAPI:
        """The ASGI app; its lifespan starts and stops this runtime."""

        @asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        holder = _LazyServices(self)
        app = create_app(holder, operations_only=not self.api_enabled)  # type: ignore[arg-type]
        app.router.lifespan_context = lifespan
        return app

    async def start(self) -> None:
        settings = self.settings
        # A layout mod_amqp would refuse stops the start before anything runs.
        layouts = amqp_layouts(settings) if settings.amqp_url and self.worker_enabled else None
        applied = await self.store.migrate()
        if applied:
            logger.info("applied migrations %s", ", ".join(applied))
        secret = await AuthService.load_token_secret(self.store, settings.token_secret)
        generated_root_password = await AuthService.bootstrap_root(self.store, settings.root_password)
        if generated_root_password:
            # Printed once, on the console only: the hash is all that is stored.
            print(f"switchhook: generated root password: {generated_root_password}", flush=True)
        await self.index.reload(self.store)
        await self.store.listen_hook_changes(self._hook_changed, self._deliveries_stored, self._token_changed)

        # Each part is built after what it uses and given it in its constructor:
        # sender -> pipeline -> deliveries -> worker -> events -> sources.
        self._sender = Sender(
            EgressPolicy(parse_networks(settings.egress_deny_list)),
            connect_timeout_s=settings.connect_timeout_s,
            max_connections=settings.max_in_flight,
            user_agent=f"switchhook/{__version__}",
        )
        pipeline = DeliveryPipeline(
            self._sender,
            default_timeout_s=settings.default_timeout_s,
            default_retries=settings.default_retries,
            # fallback hooks' primary URLs (docs/fallback.md): paused and probed on the worker's schedule
            primary_breakers=Breakers(
                settings.breaker_failures, settings.breaker_cooldown_s, settings.breaker_max_cooldown_s
            ),
        )
        deliveries = DeliveriesService(self.store, self.index, tester=pipeline)
        if self.worker_enabled:
            if self.store.backend == "sqlite":
                await deliveries.release(None)  # one process on SQLite: every lease is from a previous run
            self.worker = DeliveryWorker(
                deliveries,
                pipeline,
                lease_s=settings.lease_s,
                max_in_flight=settings.max_in_flight,
                max_in_flight_per_hook=settings.max_in_flight_per_hook,
                max_in_flight_per_domain=settings.max_in_flight_per_domain,
                max_queued=settings.max_queued,
                poll_interval_s=settings.poll_interval_s,
                breakers=Breakers(
                    settings.breaker_failures, settings.breaker_cooldown_s, settings.breaker_max_cooldown_s
                ),
                observer=self.metrics,
                shared_store=self.store.backend != "sqlite",
            )
        catalogue = CatalogueService.packaged(settings.domain_header_list)
        events = EventsService(
            self.store,
            self.index,
            domain_headers=settings.domain_header_list,
            seen=catalogue.seen,
            call_headers=settings.call_header_list,
            counters=self.metrics,
            fast_path=self.worker,
            max_deliveries_per_request=settings.max_deliveries_per_request,
        )
        # Accepted through `events`, which hands their deliveries to the worker (if any): built once both exist.
        self.alerts = AlertsService(events, self.index)
        self.metrics.registry.register(self.alerts)
        if self.worker is not None:
            self.worker.alerts = self.alerts
        checks = PasswordChecks(settings.login_concurrency, settings.login_queue)
        self.metrics.registry.register(checks)
        auth = AuthService(self.store, secret, settings.session_ttl_days * 86400, checks=checks)
        self.services = Services(
            auth=auth,
            domains=DomainsService(self.store, auth),
            hooks=HooksService(
                self.store,
                self.index,
                max_hooks_per_domain=settings.max_hooks_per_domain,
                max_hooks_per_event_key=settings.max_hooks_per_event_key,
            ),
            events=events,
            catalogue=catalogue,
            deliveries=deliveries,
            index=self.index,
            ingest_limiter=RateLimiter(settings.ingest_rate_per_domain, settings.ingest_burst_per_domain or None),
            stats=StatsService(self.store, self.worker.admission.breakers if self.worker else None),
            health=self.health,
            metrics=self.metrics.render,
            max_body_bytes=settings.max_body_bytes,
        )
        self.alerts.start()
        for row, reason in self._disabled_early or ():  # stored in the background, once the worker below started
            self.alerts.hook_disabled_by_system(row, reason)
        self._disabled_early = None
        if self.worker is not None:
            self.worker.start()
            self.sources = self._build_sources(events, layouts)
            for source in self.sources:
                self.index.on_change(source.hooks_changed)
                self._tasks.append(asyncio.create_task(self._run_source(source), name=source.name))
            self._tasks.append(asyncio.create_task(self._purge_loop(deliveries), name="purge"))
        self._tasks.append(asyncio.create_task(self._gauge_loop(deliveries), name="gauges"))
        tune_interpreter()

    def _build_sources(self, events: EventsService, layouts: tuple[Layout, Layout | None] | None) -> list[EventSource]:
        """The configured sources, each feeding `events.accept` under its own name."""
        settings = self.settings

        def sink(name: str) -> Sink:
            async def accept(batch: list[Event]) -> None:
                await events.accept(batch, source=name)

            return accept

        def dropped(name: str) -> Callable[[str], None]:
            return lambda reason: self.metrics.dropped(name, reason, 1)

        sources: list[EventSource] = []
        if settings.amqp_url and layouts is not None:
            from switchhook.ingest.amqp import AmqpSource

            layout, cc_layout = layouts
            sources.append(
                AmqpSource(
                    settings.amqp_url,
                    sink("amqp"),
                    self.index.event_keys,
                    queue_name=settings.amqp_queue,
                    events_exchange=settings.amqp_events_exchange,
                    cc_exchange=settings.amqp_cc_exchange,
                    layout=layout,
                    cc_layout=cc_layout,
                    on_dropped=dropped("amqp"),
                )
            )
        if settings.esl_url:
            from switchhook.ingest.esl import EslSource

            sources.append(
                EslSource(
                    settings.esl_url,
                    sink("esl"),
                    self.index.event_keys,
                    reconnect_max_s=settings.esl_reconnect_max_s,
                    on_dropped=dropped("esl"),
                )
            )
        return sources

    @staticmethod
    async def _run_source(source: EventSource) -> None:
        # A source reconnects by itself and logs its own outages: run() ending in an error is a bug.
        try:
            await source.run()
        except Exception:
            logger.exception("source %s stopped on an unexpected error", source.name)

    def _token_changed(self, domain: str, token_id: str) -> None:
        if self.services is not None:
            self.services.auth.forget_token(domain, token_id)

    def _hook_disabled(self, row: HookRow, reason: str) -> None:
        """The index disabled a stored hook it cannot load: switchhook::hook_disabled (kept until alerts exist)."""
        if self.alerts is not None:
            self.alerts.hook_disabled_by_system(row, reason)
        elif self._disabled_early is not None:
            self._disabled_early.append((row, reason))

    def _deliveries_stored(self) -> None:
        if self.worker is not None:
            self.worker.poke()

    async def _hook_changed(self, domain: str, hook_id: str) -> None:
        try:
            await self.index.reload(self.store, domain, hook_id)
        except Unavailable as exc:
            logger.warning("reloading hook %s failed: %s", hook_id, exc)
        except Exception:
            logger.exception("reloading hook %s failed", hook_id)

    async def _purge_loop(self, deliveries: DeliveriesService) -> None:
        while True:
            try:
                purged = await deliveries.purge(self.settings.retention_days * 86400)
                if purged:
                    logger.info("purged %d finished deliveries", purged)
            except Unavailable as exc:
                logger.warning("purge failed: %s", exc)
            except Exception:
                logger.exception("purge failed")
            await asyncio.sleep(PURGE_EVERY_S)

    async def _gauge_loop(self, deliveries: DeliveriesService) -> None:
        while True:
            try:
                self.metrics.queue_depth.set(await deliveries.pending())
            except Unavailable:
                pass  # the database is away: /health says so, and the gauge keeps its last value
            except Exception:
                logger.exception("reading the queue depth failed")
            if self.worker is not None:
                self.metrics.in_flight(self.worker.in_flight)
            for source in self.sources:
                self.metrics.source_connected.labels(source.name).set(1 if source.state == "connected" else 0)
            await asyncio.sleep(GAUGE_EVERY_S)

    async def health(self) -> dict[str, object]:
        """The `/health` report: `degraded` when the database or a source is not connected."""
        database_ok = await self.store.ping()
        report: dict[str, object] = {
            "status": "ok",
            "version": __version__,
            "database": {"backend": self.store.backend, "ok": database_ok},
            "hooks": len(self.index),
            "time": time.time(),
        }
        for source in self.sources:
            report[source.name] = source.health()
        if self.worker is not None:
            report["worker"] = {
                "id": self.worker.worker_id,
                "inFlight": self.worker.in_flight,
                "queued": self.worker.queued,
            }
        if not database_ok or any(source.state != "connected" for source in self.sources):
            report["status"] = "degraded"
        return report

    async def stop(self) -> None:
        """The one shutdown path: sources first (no new events), then workers, then connections."""
        for source in self.sources:
            try:
                await source.stop()
            except Exception:
                logger.exception("stopping source %s failed", source.name)
        if self.worker is not None:
            await self.worker.stop()
        if self.alerts is not None:
            await self.alerts.stop()  # after the worker: it tells of failures until its last send is over
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._sender is not None:
            await self._sender.close()
        await self.store.close()


#: How long a thread may hold the GIL while another waits for it (CPython's default is 5 ms). The SQLite
#: thread lets go of the GIL around every statement step and must take it back from the event loop's thread:
#: under load each statement waited up to the full default, so a transaction of a handful of statements took
#: 10+ ms and every ingest queued behind it. At 0.5 ms the same transaction takes a few ms (benchmark,
#: scenario 1: +15-20 % deliveries/s); the loop thread pays a switch at most every 0.5 ms while another
#: thread actually waits, and nothing when none does.
SWITCH_INTERVAL_S = 0.0005


def tune_interpreter() -> None:
    """Keep the cyclic collector off the latency path, and the database thread from waiting on the GIL.

    Startup objects (modules, app, compiled hooks) are frozen out of collection, and young collections
    run less often: the hot path allocates short-lived, acyclic objects that reference counting frees, while
    a large backlog of queued deliveries made every full collection walk tens of thousands of live dicts
    (10+ ms pauses in the benchmark's isolation scenario).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    sys.setswitchinterval(SWITCH_INTERVAL_S)


class _LazyServices:
    """The app is built before the lifespan starts the runtime; routes reach the services through this."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def __getattr__(self, name: str) -> Any:
        services = self._runtime.services
        if services is None:
            raise AttributeError(name)
        return getattr(services, name)
