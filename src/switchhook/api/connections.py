"""The HTTP connection guard: how long a client may take to send a request, and how many connections it may hold.

uvicorn (httptools) closes a kept-alive connection that stays idle `timeout_keep_alive` seconds, but never a
new connection that sends nothing or half a head, nor a body that stops arriving, and its head has no size
bound; its `limit_concurrency` refuses `/health` with the rest. Unauthenticated clients held 1,100 half-sent
requests open until the process ran out of file descriptors (RELIABILITY.md, hostile tenants). So each
connection goes through this, as its HTTP protocol:

    accept ──head within header_timeout_s──▶ head read ──body within body_timeout_s──▶ request read ──▶ app
      │  (past the ceiling: the oldest          │  (more than max_connections open and        (the app's own time
      │   connection still without a head       │   not /health: 503, Connection: close)       is not timed here)
      │   is closed to make room)               │
      └─ too slow or over 64 KiB: 408/431, closed ┴─ too slow: 408, closed

The head's clock starts at accept, or on a kept-alive connection at the first byte of the next request (an
idle kept-alive connection is uvicorn's `timeout_keep_alive`). Past `max_connections` a connection is still
accepted, because a refusal at accept cannot know the path: its head is read and anything but `/health` is
refused with a 503, so a monitor gets its answer while the bound is saturated by idle or slow clients. Past the
ceiling (twice the bound, kept below the file descriptor limit) the oldest connection that has not sent a
whole head is closed for the new one: idle and slow clients push out each other, never a client that sends
its request at once; only when every connection is a request being read or answered is the new one refused
(503). A response sent before the whole body was read (a 401 that never read it) says Connection: close and
closes, so the unread body is neither read nor parsed as the next request.

Built on uvicorn's `HttpToolsProtocol` internals (`cycle`, `connections`, `app`): tests/hostile/
test_connections.py drives each rule against a real server, so an upgrade that changes them fails there.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger("switchhook.api")

#: A request head (request line and headers) larger than this is refused (431): httptools has no bound.
MAX_HEAD_BYTES = 64 * 1024
#: Paths answered past `max_connections`: a monitor must see the server up while clients saturate it.
HEALTH_PATHS = (b"/health", b"/health/")
#: File descriptors kept for what is not a client connection: the store, the sources, logs, the listener.
RESERVED_FDS = 128

_IDLE, _HEAD, _BODY = 0, 1, 2
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}
BUSY = b'{"status":"error","info":"Server busy: too many connections; retry later."}'


@dataclass(frozen=True)
class ConnectionLimits:
    """What one process lets clients hold. `max_connections` are served; up to `ceiling` are open at all."""

    header_timeout_s: float
    body_timeout_s: float
    max_connections: int
    ceiling: int


def connection_limits(
    header_timeout_s: float, body_timeout_s: float, max_connections: int, other_fds: int
) -> ConnectionLimits:
    """The limits this process can keep: raises the soft file-descriptor limit to the hard one when it is
    lower than twice `max_connections` plus `other_fds` (outgoing connections and RESERVED_FDS), lowers the
    bound when even the hard limit is too low, and logs what it settled on."""
    wanted = 2 * max_connections + other_fds + RESERVED_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted and (hard == resource.RLIM_INFINITY or hard > soft):
        raised = wanted if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the file descriptor limit from %d to %d: %s", soft, raised, exc)
    served = max_connections
    if soft != resource.RLIM_INFINITY and soft < wanted:
        served = max(1, (soft - other_fds - RESERVED_FDS) // 2)
        logger.warning(
            "SWITCHHOOK_MAX_CONNECTIONS=%d needs %d file descriptors and the limit is %d: serving %d connections",
            max_connections,
            wanted,
            soft,
            served,
        )
    limits = ConnectionLimits(header_timeout_s, body_timeout_s, served, 2 * served)
    logger.info(
        "connections: %d served, %d open at most (past %d only /health is served); a request head within %g s, "
        "its body within %g s; file descriptor limit %s",
        limits.max_connections,
        limits.ceiling,
        limits.max_connections,
        header_timeout_s,
        body_timeout_s,
        "unlimited" if soft == resource.RLIM_INFINITY else soft,
    )
    return limits


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpProtocol]:
    """The protocol class to give uvicorn as `http=`, bound to `limits`."""

    class Bound(GuardedHttpProtocol):
        pass

    Bound.limits = limits
    Bound.waiting = {}
    return Bound


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines, the head bound and the connection bound above."""

    limits: ClassVar[ConnectionLimits]
    #: The connections still waiting for a request head, oldest first: the first to go past the ceiling.
    waiting: ClassVar[dict[GuardedHttpProtocol, None]]
    _warned_at: ClassVar[float] = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading = _HEAD  # what the connection waits for from the client
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._keep_alive_after_body = True

    # -- the connection ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.ceiling:
            self._warn_busy()
            # The oldest connection that has not sent a whole head makes room: slow and idle clients
            # then push out each other, never a client that sends its request at once (a monitor's).
            oldest = next(iter(self.waiting), None)
            if oldest is None:
                self._refuse(503, BUSY)  # every one is a request being read or answered
                return
            oldest._disarm()
            if oldest._head_bytes:
                oldest._refuse(503, BUSY)
            else:
                oldest.transport.close()
        self._arm(self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading == _IDLE and (self.cycle is None or self.cycle.response_complete):
            self._reading = _HEAD  # the next request on a kept-alive connection begins
        super().data_received(data)
        if self._reading == _IDLE or self.transport.is_closing():
            return
        if self._reading == _HEAD:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, b"Request head larger than %d bytes." % MAX_HEAD_BYTES)
                return
        if self._deadline is None:
            self._arm(self.limits.header_timeout_s if self._reading == _HEAD else self.limits.body_timeout_s)

    # -- httptools callbacks: where the request is ------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reading = _HEAD  # a pipelined request's head may begin while the one before is being answered
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._reading, self._head_bytes = _BODY, 0
        if len(self.connections) > self.limits.max_connections and self.url.split(b"?", 1)[0] not in HEALTH_PATHS:
            self._warn_busy()
            self.app = _busy  # this connection's requests; the answer closes it
        super().on_headers_complete()
        # Kept alive only once the whole body is read: a response sent before it (a 401 that never read the
        # body) says Connection: close and closes, so the unread rest is never taken for the next request.
        self._keep_alive_after_body, self.cycle.keep_alive = self.cycle.keep_alive, False

    def on_message_complete(self) -> None:
        self._disarm()
        self._reading = _IDLE
        if not self.cycle.response_started:
            self.cycle.keep_alive = self._keep_alive_after_body
        super().on_message_complete()

    # -- deadlines --------------------------------------------------------------------------------------

    def _arm(self, timeout_s: float) -> None:
        self._deadline = self.loop.call_later(timeout_s, self._timed_out)
        if self._reading == _HEAD:
            self.waiting[self] = None

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
            self.waiting.pop(self, None)

    def _timed_out(self) -> None:
        self._deadline = None
        self.waiting.pop(self, None)
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self._reading == _BODY and cycle is not None and not cycle.response_complete:
            started = cycle.response_started
            # The app waiting for the rest is told the client is gone; whatever it answers is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
            if started:
                self.transport.close()
                return
            self._refuse(408, b"Request body not received in time.")
        elif self._reading == _HEAD and self._head_bytes:
            self._refuse(408, b"Request head not received in time.")
        else:
            self.transport.close()  # nothing was sent: nobody to answer

    def _refuse(self, status: int, body: bytes) -> None:
        """Answer straight on the transport (no app runs) and close."""
        self._disarm()
        content = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        kind = b"application/json" if body.startswith(b"{") else b"text/plain; charset=utf-8"
        content.append(b"content-type: %s\r\ncontent-length: %d\r\n" % (kind, len(body)))
        if status == 503:
            content.append(b"retry-after: 1\r\n")
        content.extend([b"connection: close\r\n\r\n", body])
        self.transport.write(b"".join(content))
        self.transport.close()

    def _warn_busy(self) -> None:
        # One line every ten seconds at most: a flood of refusals must not become a flood of logs.
        now = time.monotonic()
        if now - GuardedHttpProtocol._warned_at >= 10.0:
            GuardedHttpProtocol._warned_at = now
            logger.warning(
                "connection bound reached: %d open, %d served; refusing all but /health",
                len(self.connections),
                self.limits.max_connections,
            )


async def _busy(scope: Any, receive: Any, send: Any) -> None:
    """The answer past `max_connections`: 503 in Webitel's envelope, and the connection closed."""
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(BUSY)),
                (b"retry-after", b"1"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BUSY})
