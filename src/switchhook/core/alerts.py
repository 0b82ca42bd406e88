"""switchhook's own alerts as FreeSWITCH-style events (docs/alerts.md): what each carries, how many a hook may raise.

Pure: the service (services/alerts.py) decides when a pause, a resume, a disable or a failed delivery is worth an
alert, asks this module for the event and for the rate limiter's verdict, and accepts the event through the normal
ingest path so filters, fields and templates apply to it as to any event.

An alert is `Event-Name: CUSTOM` with `Event-Subclass: switchhook::<what>`; its hook event key is therefore
`CUSTOM->switchhook::<what>` (core/events.py event_key). Header names follow FreeSWITCH's (words capitalised,
joined by dashes); every value is a string, as in FreeSWITCH's own events.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final, Generic, TypeVar
from urllib.parse import urlsplit

from switchhook.core.events import Event

SUBCLASS_PREFIX: Final = "switchhook::"
HOOK_PAUSED: Final = "switchhook::hook_paused"
HOOK_RESUMED: Final = "switchhook::hook_resumed"
HOOK_DISABLED: Final = "switchhook::hook_disabled"
DELIVERY_FAILED: Final = "switchhook::delivery_failed"
FALLBACK_USED: Final = "switchhook::fallback_used"
SUBCLASSES: Final = (HOOK_PAUSED, HOOK_RESUMED, HOOK_DISABLED, DELIVERY_FAILED, FALLBACK_USED)
#: The event key a hook subscribes with (`"event": "CUSTOM->switchhook::hook_paused"`).
KEY_PREFIX: Final = "CUSTOM->" + SUBCLASS_PREFIX
#: The domain header alerts carry (Webitel's, first of SWITCHHOOK_DOMAIN_HEADERS' defaults); the service also
#: confines the accept to the hook's domain, so an operator's other domain headers cannot move it elsewhere.
DOMAIN_HEADER: Final = "variable_domain_name"
#: Free text copied into an alert (an error, a description) is cut to this many characters.
MAX_TEXT: Final = 512

_URL_IN_TEXT = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)(?:[^\s'\"/?#@]*@)?([^\s'\"/?#]*)[^\s'\"]*")


def key_of(subclass: str) -> str:
    """The hook event key of an alert subclass."""
    return "CUSTOM->" + subclass


def is_alert_key(event_key: str) -> bool:
    """Whether a delivery of this event key is one of switchhook's own alerts (the loop guard's test)."""
    return event_key.startswith(KEY_PREFIX)


def url_origin(url: str) -> str:
    """`scheme://host[:port]` of a hook URL: user info, path, query and fragment can each carry a credential (a
    Slack incoming webhook's path is one), and an alert goes to other receivers than the hook's own."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return ""
    if not parts.scheme or not host:
        return ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def scrub(text: str | None) -> str:
    """Free text made safe to copy into an alert: every URL in it cut to its origin (an error may quote one, e.g.
    "invalid destination URL 'https://user:pass@...'"), and the whole cut to MAX_TEXT characters."""
    if not text:
        return ""
    return _URL_IN_TEXT.sub(r"\1\2", text)[:MAX_TEXT]


class AlertEvents:
    """Builds alert events for one process run: its own `Core-UUID` and a monotonic `Event-Sequence` per domain.

    Events are de-duplicated by (domain, Core-UUID, Event-Sequence) (core/ids.py): a fresh Core-UUID per run keeps
    one run's alerts from ever being taken for another's, and the sequence keeps two alerts of a domain apart. Per
    domain, not per process: a subscriber would otherwise read from its gaps how many alerts other tenants got.
    Memory: one counter per domain alerted in this run (domains are created by root, not by tenants).
    """

    def __init__(self, core_uuid: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self.core_uuid = core_uuid or str(uuid.uuid4())
        self._sequences: dict[str, Iterator[int]] = {}
        self._clock = clock

    def _sequence(self, domain: str) -> Iterator[int]:
        sequence = self._sequences.get(domain)
        if sequence is None:
            sequence = self._sequences[domain] = itertools.count(1)
        return sequence

    def build(self, subclass: str, domain: str, headers: Mapping[str, str]) -> Event:
        """An alert of `subclass` for `domain`, with the common headers first and `headers` after them."""
        now = self._clock()
        event: Event = {
            "Event-Name": "CUSTOM",
            "Event-Subclass": subclass,
            "Core-UUID": self.core_uuid,
            "Event-Sequence": str(next(self._sequence(domain))),
            "Event-Date-Timestamp": str(int(now * 1_000_000)),
            "Event-Date-GMT": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)),
            "Event-Calling-Function": "switchhook",
            DOMAIN_HEADER: domain,
        }
        event.update(headers)
        return event


def hook_headers(hook_id: str, event_keys: Iterable[str], url: str, description: object) -> dict[str, str]:
    """What every alert says of the hook it is about (never its credentials: see url_origin)."""
    headers = {"Hook-Id": hook_id, "Hook-Events": ",".join(event_keys), "Hook-Url": url_origin(url)}
    if isinstance(description, str) and description:
        headers["Hook-Description"] = description[:MAX_TEXT]
    return headers


def outcome_headers(last_status: int | None, last_error: str | None) -> dict[str, str]:
    """`Last-Status` (the HTTP status, absent without an answer) and `Last-Error` (what went wrong)."""
    headers: dict[str, str] = {}
    if last_status is not None:
        headers["Last-Status"] = str(last_status)
    error = scrub(last_error) or (f"HTTP {last_status}" if last_status is not None else "")
    if error:
        headers["Last-Error"] = error
    return headers


def seconds(value: float) -> str:
    """A duration in seconds as text, to the millisecond, without trailing zeros ("30", "0.2", "1.234")."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


# -- the storm guard: delivery_failed alerts per hook and per domain ---------------------------------------------------

T = TypeVar("T")


class Verdict(Enum):
    RAISE = "raise"
    SUPPRESS = "suppress"


@dataclass(slots=True)
class _Window(Generic[T]):
    domain: str
    started: float
    raised: int = 0
    suppressed: int = 0
    last: T | None = None  # the last suppressed failure: what its summary describes


@dataclass(frozen=True, slots=True)
class Summary(Generic[T]):
    """One hook's window is over with `suppressed` failures not alerted; `last` is the last of them."""

    hook_id: str
    domain: str
    suppressed: int
    window_s: float
    last: T


class FailureAlertLimiter(Generic[T]):
    """At most `per_hook` delivery_failed alerts per hook and `per_domain` per domain in each window of `window_s`.

    Fixed windows, each opened by a hook's first failure after the last one ended (and the same per domain). A
    failure over either limit is counted on its hook's window instead; once that window is over, `due` hands out
    one summary for it: the number suppressed and the last of them. So a dead endpoint makes at most `per_hook`
    alerts and one summary per window, however many events it fails; a domain at most `per_domain` alerts plus one
    summary per failing hook per window.

    Memory: one small record per hook and per domain with a window open, forgotten when the window is over
    (summarised if needed); at most `max_windows` hook windows: past that the oldest is closed early (summarised).
    """

    def __init__(self, per_hook: int, per_domain: int, window_s: float, max_windows: int = 10_000) -> None:
        self.per_hook = per_hook
        self.per_domain = per_domain
        self.window_s = window_s
        self.max_windows = max_windows
        # Insertion order is opening order (a window re-opened is re-inserted), so the oldest come first.
        self._hooks: dict[str, _Window[T]] = {}
        self._domains: dict[str, _Window[None]] = {}
        self._ended: list[Summary[T]] = []

    def __len__(self) -> int:
        """Hook windows open (what the limiter holds besides summaries waiting for `due`)."""
        return len(self._hooks)

    def admit(self, hook_id: str, domain: str, now: float, details: T) -> Verdict:
        """RAISE an alert for this failure, or SUPPRESS it (counted for its hook's summary)."""
        window = self._hooks.get(hook_id)
        if window is not None and now >= window.started + self.window_s:
            self._close(hook_id, window)
            window = None
        if window is None:
            if len(self._hooks) >= self.max_windows:
                oldest = next(iter(self._hooks))
                self._close(oldest, self._hooks[oldest])
            window = self._hooks[hook_id] = _Window(domain, now)
        domain_window = self._domains.get(domain)
        if domain_window is None or now >= domain_window.started + self.window_s:
            self._domains.pop(domain, None)
            domain_window = self._domains[domain] = _Window(domain, now)
        if window.raised < self.per_hook and domain_window.raised < self.per_domain:
            window.raised += 1
            domain_window.raised += 1
            return Verdict.RAISE
        window.suppressed += 1
        window.last = details
        return Verdict.SUPPRESS

    def due(self, now: float) -> list[Summary[T]]:
        """Summaries of windows that are over (each once), oldest first; over windows are forgotten."""
        for hook_id, window in list(self._hooks.items()):
            if now < window.started + self.window_s:
                break  # the rest opened later
            self._close(hook_id, window)
        for domain, domain_window in list(self._domains.items()):
            if now < domain_window.started + self.window_s:
                break
            del self._domains[domain]
        ended, self._ended = self._ended, []
        return ended

    def next_due(self) -> float | None:
        """When the oldest open window ends (None: none is open)."""
        for window in self._hooks.values():
            return window.started + self.window_s
        return None

    def _close(self, hook_id: str, window: _Window[T]) -> None:
        del self._hooks[hook_id]
        if window.suppressed and window.last is not None:
            self._ended.append(Summary(hook_id, window.domain, window.suppressed, self.window_s, window.last))
