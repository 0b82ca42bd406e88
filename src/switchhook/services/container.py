"""The services an entry point (API, sources, workers) is given by the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from switchhook.services.auth import AuthService
from switchhook.services.catalogue import CatalogueService
from switchhook.services.deliveries import DeliveriesService
from switchhook.services.domains import DomainsService
from switchhook.services.events import EventsService
from switchhook.services.hooks import HooksService
from switchhook.services.index import HookIndex
from switchhook.services.limits import RateLimiter
from switchhook.services.stats import StatsService


@dataclass
class Services:
    auth: AuthService
    domains: DomainsService
    hooks: HooksService
    events: EventsService
    catalogue: CatalogueService  # the event keys a hook can subscribe to (`/api/v2/events/catalogue`)
    deliveries: DeliveriesService
    index: HookIndex
    ingest_limiter: RateLimiter
    stats: StatsService  # the hook list's counts and pauses (`/api/v2/stats/hooks`)
    health: Callable[[], Awaitable[dict[str, object]]]  # the `/health` report (the runtime knows the sources)
    metrics: Callable[[], bytes]  # the Prometheus text of `/metrics`
    max_body_bytes: int = 5 * 1024 * 1024
