"""Owns what every event source promises the runtime: one small protocol, whatever the transport."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Literal, Protocol

from switchhook.core.events import Event

SourceState = Literal["disconnected", "connecting", "connected"]

#: Where a source hands its events, in batches: returns once they are stored durably, raises when they are not
#: (`Unavailable` for an outage of the store; anything else is a bug). The source keeps the batch and retries.
Sink = Callable[[list[Event]], Awaitable[object]]


class EventSource(Protocol):
    """An event transport (mod_amqp over RabbitMQ, the FreeSWITCH Event Socket) feeding one sink.

    The runtime `run()`s it as a task until it calls `stop()`; in between the source reconnects by itself, so
    `state` is all the runtime watches (`/health`, the `switchhook_source_connected` gauge). `hooks_changed()`
    is called, on the event loop and without awaiting, whenever the set of hooked event keys may have changed:
    the source re-binds or re-subscribes when it can and never raises for its peer's trouble.

    Background failures are logged by the source: an outage of its peer or of the sink (`Unavailable`) as one
    warning line, anything else with its traceback, so that a bug never reads as an outage.
    """

    @property
    def name(self) -> str:
        """The source's label in `/health`, in metrics and in the events' `source`: `amqp`, `esl`."""
        ...

    @property
    def state(self) -> SourceState: ...

    def counters(self) -> Mapping[str, int]:
        """Running totals since start (`received`, and what else the transport counts: rejected, reconnects...)."""
        ...

    def health(self) -> dict[str, object]:
        """This source's entry in `/health`: at least `state` and `received`."""
        ...

    async def run(self) -> None:
        """Connect, consume and feed the sink until `stop()`; called once."""
        ...

    async def stop(self) -> None:
        """Stop taking events, give the sink a bounded time for those in hand, then end `run()`."""
        ...

    def hooks_changed(self) -> None:
        """Follow the hooked event keys (bind or subscribe to new ones, drop unused ones) now or once connected."""
        ...
