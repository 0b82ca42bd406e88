"""The event catalogue (docs/catalogue.md): the packaged entries with samples in the caller's domain, and the event
keys this process has seen in that domain."""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from switchhook.core.catalogue import CatalogueEntry, for_domain, known_keys, parse_catalogue
from switchhook.core.errors import PermissionDenied
from switchhook.core.events import DEFAULT_DOMAIN_HEADERS, Event
from switchhook.core.names import MAX_DOMAIN_NAME, validate_domain_name
from switchhook.services.access import Caller, effective_domain, require

#: Bounds of what the seen-keys map may hold (RELIABILITY.md, hostile tenants: every tenant's cost is bounded).
#: Domains tracked per process: past it the domain tracked longest is forgotten for the new one.
MAX_DOMAINS: Final = 10_000
#: Keys the catalogue does not know, per domain: past it the one first tracked is forgotten for the new one.
MAX_UNKNOWN_KEYS_PER_DOMAIN: Final = 32
#: Characters of an event key worth tracking; a longer one (a client's garbage Event-Name) is not.
MAX_KEY_CHARS: Final = 256
#: Bytes of JSON a live key's sample may take; a larger event leaves the key without a sample.
MAX_SAMPLE_BYTES: Final = 16 * 1024
#: Bytes all live samples of the process may take together (MAX_SAMPLE_BYTES x 2,048): past it, new samples wait
#: for room (the key's lastSeen still moves).
MAX_SAMPLES_BYTES: Final = 32 * 1024 * 1024
#: A live key's sample is replaced at most this often (s): encoding an event costs ~10 us, not worth it per event.
SAMPLE_EVERY_S: Final = 1.0
#: What a live key's entry says of itself.
LIVE_DESCRIPTION: Final = "Seen in this domain; not in the catalogue. The sample is the latest such event."
#: Domains whose rewritten samples are kept between requests (least recently asked for first out).
SAMPLE_DOMAINS_CACHED: Final = 64
#: Header names a live key's `fields` lists at most.
MAX_LIVE_FIELDS: Final = 100


@functools.cache
def packaged_catalogue() -> tuple[CatalogueEntry, ...]:
    """The catalogue shipped in the package (switchhook/catalogue/events.json and samples/), read once per process."""
    root = importlib.resources.files("switchhook").joinpath("catalogue")
    document = json.loads(root.joinpath("events.json").read_bytes())
    return parse_catalogue(document, lambda name: root.joinpath("samples", name).read_bytes())


@dataclass(slots=True)
class _Seen:
    last_s: float
    known: bool
    sample: bytes | None = None  # unknown keys only: the latest event, JSON
    sampled_s: float = float("-inf")


class SeenKeys:
    """When each event key was last accepted in each domain, in this process, and for keys the catalogue does not
    know the latest such event: what the catalogue's `lastSeen` and live keys show.

    Why in memory, updated at accept: events are stored only when a hook matches them, so the store cannot say which
    keys a domain sends; storing every event for this would cost a write per event. Here an accepted event costs two
    dict look-ups and a float store (a live key's sample is encoded at most once a second), nothing on the delivery
    path. The price: it starts empty at each start and each process knows only the events it accepted (with
    `serve --api` and `--worker` apart, AMQP and ESL events are seen by the worker processes: docs/catalogue.md)."""

    def __init__(
        self,
        known: frozenset[str],
        *,
        max_domains: int = MAX_DOMAINS,
        max_unknown_keys_per_domain: int = MAX_UNKNOWN_KEYS_PER_DOMAIN,
        max_sample_bytes: int = MAX_SAMPLE_BYTES,
        max_samples_bytes: int = MAX_SAMPLES_BYTES,
        sample_every_s: float = SAMPLE_EVERY_S,
    ) -> None:
        self._known = known
        self._domains: dict[str, dict[str, _Seen]] = {}
        self._unknown: dict[str, int] = {}  # per domain: how many of its keys are unknown
        self.max_domains = max_domains
        self.max_unknown_keys_per_domain = max_unknown_keys_per_domain
        self.max_sample_bytes = max_sample_bytes
        self.max_samples_bytes = max_samples_bytes
        self.sample_every_s = sample_every_s
        self.samples_bytes = 0

    def note(self, domain: str, key: str, event: Event, now: float) -> None:
        """An event of `key` was accepted for `domain` at `now` (s)."""
        keys = self._domains.get(domain)
        if keys is None:
            if len(domain) > MAX_DOMAIN_NAME:
                return
            if len(self._domains) >= self.max_domains:
                self._forget_domain(next(iter(self._domains)))
            keys = self._domains[domain] = {}
            self._unknown[domain] = 0
        seen = keys.get(key)
        if seen is None:
            seen = self._track(domain, keys, key, now)
            if seen is None:
                return
        seen.last_s = now
        if not seen.known and now - seen.sampled_s >= self.sample_every_s:
            seen.sampled_s = now
            self._sample(seen, event)

    def seen(self, domain: str) -> dict[str, tuple[float, bytes | None]]:
        """key -> (last seen, s; the latest event's JSON for unknown keys, else None) of `domain`."""
        return {key: (s.last_s, s.sample) for key, s in self._domains.get(domain, {}).items()}

    def _track(self, domain: str, keys: dict[str, _Seen], key: str, now: float) -> _Seen | None:
        if key in self._known:
            seen = keys[key] = _Seen(now, known=True)
            return seen
        if len(key) > MAX_KEY_CHARS or self.max_unknown_keys_per_domain <= 0:
            return None
        if self._unknown[domain] >= self.max_unknown_keys_per_domain:
            oldest = next(k for k, s in keys.items() if not s.known)  # at most ~70 entries to look through
            self._drop_sample(keys.pop(oldest))
            self._unknown[domain] -= 1
        self._unknown[domain] += 1
        seen = keys[key] = _Seen(now, known=False)
        return seen

    def _sample(self, seen: _Seen, event: Event) -> None:
        try:
            encoded = orjson.dumps(event)
        except (orjson.JSONEncodeError, TypeError):
            return
        if len(encoded) > self.max_sample_bytes:
            self._drop_sample(seen)
            return
        room = self.max_samples_bytes - self.samples_bytes + len(seen.sample or b"")
        if len(encoded) > room:
            return
        self._drop_sample(seen)
        seen.sample = encoded
        self.samples_bytes += len(encoded)

    def _drop_sample(self, seen: _Seen) -> None:
        if seen.sample is not None:
            self.samples_bytes -= len(seen.sample)
            seen.sample = None

    def _forget_domain(self, domain: str) -> None:
        for seen in self._domains.pop(domain).values():
            self._drop_sample(seen)
        self._unknown.pop(domain, None)


class CatalogueService:
    """GET /api/v2/events/catalogue: the packaged entries, then the domain's live keys the catalogue does not know."""

    def __init__(
        self,
        seen: SeenKeys,
        entries: Sequence[CatalogueEntry] | None = None,
        domain_headers: Sequence[str] = DEFAULT_DOMAIN_HEADERS,
    ) -> None:
        self.seen = seen
        self._entries = tuple(packaged_catalogue() if entries is None else entries)
        self._domain_headers = tuple(domain_headers)
        # Rewriting every sample to a domain costs ~3 ms (a regex over ~3,000 values): done once per domain while it
        # is among the last SAMPLE_DOMAINS_CACHED asked for (~65 KB each: the strings are shared), so a client polling
        # the route costs ~0.05 ms a request, not 3 ms.
        self._samples = functools.lru_cache(maxsize=SAMPLE_DOMAINS_CACHED)(self._samples_for)

    @classmethod
    def packaged(cls, domain_headers: Sequence[str] = DEFAULT_DOMAIN_HEADERS) -> CatalogueService:
        """The packaged catalogue with an empty seen-keys map."""
        return cls(SeenKeys(known_keys(packaged_catalogue())), domain_headers=domain_headers)

    def list(self, caller: Caller, domain: str | None) -> list[dict[str, Any]]:
        """Every entry, its sample in the caller's domain (root: `domain`), then the live keys, newest first."""
        scope = validate_domain_name(effective_domain(caller, domain))
        seen = self.seen.seen(scope)
        listed: list[dict[str, Any]] = []
        for entry, sample in zip(self._entries, self._samples(scope), strict=True):
            last = seen.get(entry.key)
            listed.append(
                {
                    "key": entry.key,
                    "description": entry.description,
                    "fields": list(entry.fields),
                    "sample": sample,
                    "lastSeen": _ms(last[0]) if last else None,
                    "known": True,
                }
            )
        known = known_keys(self._entries)
        live = sorted(((k, v) for k, v in seen.items() if k not in known), key=lambda kv: -kv[1][0])
        # A live key's sample is a real event of the domain: shown to whom may read the domain's events (through
        # its deliveries), not to a `user` role, which sees the key and when it was last seen only.
        shown = _may_read_events(caller)
        for key, (last_s, encoded) in live:
            sample = orjson.loads(encoded) if encoded is not None and shown else None
            listed.append(
                {
                    "key": key,
                    "description": LIVE_DESCRIPTION,
                    "fields": list(sample)[:MAX_LIVE_FIELDS] if isinstance(sample, dict) else [],
                    "sample": sample,
                    "lastSeen": _ms(last_s),
                    "known": False,
                }
            )
        return listed

    def _samples_for(self, domain: str) -> tuple[Event | None, ...]:
        """Every entry's sample rewritten to `domain` (shared between requests: never to be changed)."""
        return tuple(
            None if entry.sample is None else for_domain(entry.sample, domain, self._domain_headers)
            for entry in self._entries
        )


def _may_read_events(caller: Caller) -> bool:
    try:
        require(caller, "delivery", "r")
    except PermissionDenied:
        return False
    return True


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
