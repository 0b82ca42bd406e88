"""Owns the FreeSWITCH inbound Event Socket client: auth, subscription to hooked keys, batches to a sink."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote, urlsplit

from switchhook.core.errors import InvalidEvent, Unavailable
from switchhook.core.events import Event, Frame, FrameDecoder, decode_frame_event
from switchhook.ingest.source import Sink, SourceState

logger = logging.getLogger("switchhook.ingest.esl")

DEFAULT_PORT: Final = 8021
DEFAULT_PASSWORD: Final = "ClueCon"  # noqa: S105 -- FreeSWITCH's stock event_socket.conf password
BACKLOG_MAX_EVENTS: Final = 10_000

_CUSTOM: Final = "CUSTOM"
_EVERY_EVENT: Final = frozenset({"ALL", "SWITCH_EVENT_ALL"})  # switch_name_event ignores case and the prefix
_READ_CHUNK_BYTES: Final = 64 * 1024
_LOG_EXCERPT_CHARS: Final = 200
_CLOSE_TIMEOUT_S: Final = 1.0
# The Event Socket has no replay: every second spent reconnecting after FreeSWITCH is back loses its calls'
# events. So retries start at 0.1-0.2 s and never wait more than reconnect_max_s (1 s by default): a switch
# that restarts is re-subscribed within about a second of answering again. A refused password is an
# operator's error that retrying will not fix soon: those retries back off to _AUTH_RETRY_MAX_S instead.
RECONNECT_INITIAL_S: Final = 0.2
RECONNECT_MAX_S: Final = 1.0
_AUTH_RETRY_MAX_S: Final = 30.0
# Without traffic a silently dead switch (power loss, NAT expiry) would keep us "connected" forever:
# ESL has no heartbeat of its own unless HEARTBEAT events are subscribed, so let the kernel probe.
_KEEPALIVE_IDLE_S: Final = 30
_KEEPALIVE_INTERVAL_S: Final = 10
_KEEPALIVE_PROBES: Final = 3


@dataclass(frozen=True)
class EslUrl:
    """Where FreeSWITCH's event socket listens. The password never appears in repr() or str()."""

    host: str
    port: int
    password: str = field(repr=False)

    @classmethod
    def parse(cls, url: str) -> EslUrl:
        """Parse `esl://:password@host:port` (or `esl://password@host:port`); defaults 8021 and ClueCon.

        Errors never quote the URL, because it holds the password.
        """
        parts = urlsplit(url.strip())
        if parts.scheme.lower() != "esl":
            raise ValueError("the ESL URL must start with esl://")
        host = parts.hostname
        if not host:
            raise ValueError("the ESL URL has no host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("the ESL URL has an invalid port") from None
        # `esl://ClueCon@host`: ESL has no user name, so a lone userinfo can only be the password.
        password = unquote(parts.password if parts.password is not None else parts.username or "")
        return cls(host=host, port=port or DEFAULT_PORT, password=password or DEFAULT_PASSWORD)

    @property
    def address(self) -> str:
        """`host:port` (IPv6 hosts bracketed), safe to log."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"esl://{self.address}"


def _subscription_keys(event_keys: Collection[str]) -> frozenset[str]:
    """The hook keys as FreeSWITCH can subscribe them: `NAME`, `CUSTOM` or `CUSTOM->subclass`."""
    keys: set[str] = set()
    for key in event_keys:
        # A space separates tokens and a newline ends the command: such a key would inject commands.
        if not key or any(char.isspace() or not char.isprintable() for char in key):
            logger.warning("ESL: not subscribing to event key %r: it contains whitespace", key[:80])
            continue
        name, _, subclass = key.partition("->")
        if not name:
            continue
        if name.upper() in _EVERY_EVENT:
            # No event is named ALL, so no hook could match what it subscribes: the whole switch's traffic.
            logger.warning("ESL: not subscribing to event key %r: it would subscribe to every event", key[:80])
            continue
        if name != _CUSTOM:
            # FreeSWITCH filters subclasses of CUSTOM only; other names subscribe whole, matching sorts them.
            keys.add(name)
        elif subclass:
            keys.add(f"{_CUSTOM}->{subclass}")
        else:
            keys.add(_CUSTOM)
    return frozenset(keys)


def _subscription_tokens(keys: Collection[str]) -> list[str]:
    """Plain names sorted, then `CUSTOM` and its subclasses: the token list of `event`/`nixevent`."""
    names: set[str] = set()
    subclasses: set[str] = set()
    custom = False
    for key in keys:
        name, _, subclass = key.partition("->")
        if name == _CUSTOM:
            custom = True
            if subclass:
                subclasses.add(subclass)
        else:
            names.add(name)
    tokens = sorted(names)
    if custom:
        # mod_event_socket reads every token after CUSTOM as a subclass, so CUSTOM must come last.
        tokens += [_CUSTOM, *sorted(subclasses)]
    return tokens


def subscription_command(event_keys: Collection[str]) -> str:
    """The `event json ...` command subscribing exactly to these hook event keys; "" when there are none.

    `CUSTOM->sofia::register` is spelled `CUSTOM sofia::register`; a bare `CUSTOM` key subscribes to
    CUSTOM events without a subclass. Keys holding whitespace are skipped (and logged).
    """
    tokens = _subscription_tokens(_subscription_keys(event_keys))
    return f"event json {' '.join(tokens)}" if tokens else ""


def _backoff_s(failures: int, initial_s: float, max_s: float) -> float:
    """Delay after `failures` (>= 1) failures in a row: doubling from initial_s, capped at max_s, jittered."""
    base_s = min(max_s, initial_s * 2.0 ** min(failures - 1, 30))
    # 50-100 % jitter keeps a floor while spreading reconnects of many instances after a switch restart.
    return base_s * (0.5 + 0.5 * random.random())  # noqa: S311 -- jitter, not a secret


def _excerpt(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _LOG_EXCERPT_CHARS else text[:_LOG_EXCERPT_CHARS] + "..."


class _EslError(Exception):
    """Why a session ended, in words safe to log (never the password)."""


class _AuthFailed(_EslError):
    """FreeSWITCH answered our `auth` with something other than +OK (wrong password)."""


class _Disconnected(_EslError):
    """FreeSWITCH sent text/disconnect-notice (or rude-rejection) and closes the socket."""


class _Connection:
    """One socket with its frame decoder; hands out frames one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder()
        self._frames: deque[Frame] = deque()

    async def next_frame(self) -> Frame:
        while not self._frames:
            data = await self._reader.read(_READ_CHUNK_BYTES)
            if not data:
                raise ConnectionResetError("FreeSWITCH closed the connection")
            self._frames.extend(self._decoder.feed(data))
        return self._frames.popleft()

    def take_buffered(self) -> list[Frame]:
        frames = list(self._frames)
        self._frames.clear()
        return frames

    @property
    def writable(self) -> bool:
        return not self._writer.is_closing()

    def send(self, command: str) -> None:
        # Commands are tiny and rare, so a plain write (no drain) cannot build up a buffer worth awaiting.
        self._writer.write(command.encode() + b"\n\n")

    async def close(self) -> None:
        self._writer.close()
        # asyncio.timeout, not wait_for: before 3.12 wait_for can swallow a cancellation that stop() sends.
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await self._writer.wait_closed()


def _enable_keepalive(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in (
            ("TCP_KEEPIDLE", _KEEPALIVE_IDLE_S),
            ("TCP_KEEPINTVL", _KEEPALIVE_INTERVAL_S),
            ("TCP_KEEPCNT", _KEEPALIVE_PROBES),
        ):
            if hasattr(socket, option):  # Linux; elsewhere the system defaults apply
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


class EslSource:
    """Inbound ESL client: keeps one connection to FreeSWITCH alive and hands decoded events to `sink`.

    `sink(batch)` must store the events durably and return; when it raises, the same batch is retried
    with backoff while the socket keeps being read into a backlog of at most `backlog_max` events
    (the oldest are dropped beyond it: ESL cannot redeliver). Call `resubscribe()` (from the event
    loop's thread) whenever the set returned by `event_keys()` may have changed. Implements
    `ingest.source.EventSource`.
    """

    name: Final = "esl"

    def __init__(
        self,
        url: str,
        sink: Sink,
        event_keys: Callable[[], Collection[str]],
        *,
        reconnect_initial_s: float = RECONNECT_INITIAL_S,
        reconnect_max_s: float = RECONNECT_MAX_S,
        connect_timeout_s: float = 5.0,
        batch_max: int = 200,
        sink_retry_initial_s: float = 0.5,
        sink_retry_max_s: float = 30.0,
        backlog_max: int = BACKLOG_MAX_EVENTS,
        on_dropped: Callable[[str], None] | None = None,
    ) -> None:
        if batch_max < 1 or backlog_max < 1:
            raise ValueError("batch_max and backlog_max must be at least 1")
        self._url = EslUrl.parse(url)
        self._sink = sink
        self._event_keys = event_keys
        self._reconnect_initial_s = reconnect_initial_s
        self._reconnect_max_s = reconnect_max_s
        self._connect_timeout_s = connect_timeout_s
        self._batch_max = batch_max
        self._sink_retry_initial_s = sink_retry_initial_s
        self._sink_retry_max_s = sink_retry_max_s
        self._backlog_max = backlog_max
        # Told the reason (`undecodable`, `backlog_full`) of every event lost here: the runtime counts them.
        self._on_dropped = on_dropped

        self.state: SourceState = "disconnected"
        self.events_received = 0  # decoded from the socket
        self.events_failed = 0  # event frames that could not be decoded
        self.events_dropped = 0  # thrown away because the backlog was full
        self.reconnects = 0  # connection attempts after the first

        self._conn: _Connection | None = None  # set while connected
        self._session_connected = False  # the current session got through the handshake
        self._subscribed: frozenset[str] = frozenset()  # what the live connection is subscribed to
        self._pending_replies: deque[str] = deque()  # verbs of commands awaiting their command/reply
        self._resubscribe_requested = False
        self._backlog: deque[Event] = deque()
        self._in_flight = 0  # events of the batch the sink is working on
        self._overflowing = False
        self._wakeup = asyncio.Event()  # backlog got events
        self._idle = asyncio.Event()  # backlog empty and nothing in flight
        self._idle.set()
        self._stopping = False
        self._connect_task: asyncio.Task[None] | None = None
        self._deliver_task: asyncio.Task[None] | None = None

    @property
    def backlog_size(self) -> int:
        """Events read from the socket but not yet accepted by the sink."""
        return len(self._backlog) + self._in_flight

    def counters(self) -> Mapping[str, int]:
        """Totals since start: events `received` (decoded), `failed` (undecodable), `dropped` (backlog full),
        `reconnects`."""
        return {
            "received": self.events_received,
            "failed": self.events_failed,
            "dropped": self.events_dropped,
            "reconnects": self.reconnects,
        }

    def health(self) -> dict[str, object]:
        """State and events received, for /health."""
        return {"state": self.state, "received": self.events_received}

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Connect, subscribe and feed the sink until `stop()` (or cancellation); reconnects by itself."""
        if self._connect_task is not None:
            raise RuntimeError("EslSource.run() is already running")
        if self._stopping:
            return
        self._connect_task = asyncio.create_task(self._connect_forever(), name="esl-connect")
        self._deliver_task = asyncio.create_task(self._deliver_forever(), name="esl-deliver")
        pending: set[asyncio.Task[None]] = {self._connect_task, self._deliver_task}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    # Both loops only end by cancellation (stop()); anything else is a bug worth surfacing.
                    if not task.cancelled() and (error := task.exception()) is not None:
                        raise error
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self.state = "disconnected"

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Close the socket, let the sink take the backlog for up to drain_timeout_s, then end `run()`."""
        self._stopping = True
        connect = self._connect_task
        while connect is not None and not connect.done():
            connect.cancel()
            await asyncio.wait({connect}, timeout=0.1)
        deliver = self._deliver_task
        if deliver is not None and not deliver.done():
            try:
                async with asyncio.timeout(drain_timeout_s):
                    await self._idle.wait()
            except TimeoutError:
                logger.error("ESL: stopping with %d events the sink has not stored; they are lost", self.backlog_size)
            while not deliver.done():
                deliver.cancel()
                await asyncio.wait({deliver}, timeout=0.1)
        self.state = "disconnected"

    def hooks_changed(self) -> None:
        """The hooked event keys may have changed: `resubscribe()`."""
        self.resubscribe()

    def resubscribe(self) -> None:
        """The hooked event keys changed: update the live subscription now (no await, no reconnect).

        When not connected the next connection subscribes with the fresh keys anyway.
        """
        conn = self._conn
        if conn is None or self.state != "connected":
            # A handshake in progress may already have read the old keys: it checks this flag when done.
            self._resubscribe_requested = True
            return
        self._update_subscription(conn)

    # ------------------------------------------------------------------ connection

    async def _connect_forever(self) -> None:
        failures = 0
        first = True
        while not self._stopping:
            max_s = self._reconnect_max_s  # besides cancellation: a cancel swallowed by a library must not loop on
            if not first:
                self.reconnects += 1
            first = False
            self.state = "connecting"
            self._session_connected = False
            try:
                await self._session()
            except _AuthFailed as exc:
                logger.error("ESL %s: %s", self._url.address, exc)
                max_s = max(max_s, _AUTH_RETRY_MAX_S)
            except (_EslError, OSError, TimeoutError, InvalidEvent) as exc:
                logger.warning("ESL %s: %s", self._url.address, _excerpt(str(exc) or type(exc).__name__))
            except Exception:
                # Keep ingesting whatever went wrong; the traceback is for the bug report.
                logger.exception("ESL %s: unexpected error", self._url.address)
            if self._session_connected:
                failures = 0  # a session that got through the handshake resets the backoff
            self.state = "disconnected"
            failures += 1
            delay_s = _backoff_s(failures, self._reconnect_initial_s, max_s)
            logger.info("ESL %s: reconnecting in %.2f s", self._url.address, delay_s)
            await asyncio.sleep(delay_s)

    async def _session(self) -> None:
        """One connection, from TCP connect to its end (always an exception saying why)."""
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                reader, writer = await asyncio.open_connection(self._url.host, self._url.port)
        except TimeoutError:
            raise _EslError(f"no TCP connection within {self._connect_timeout_s} s") from None
        conn = _Connection(reader, writer)
        self._pending_replies.clear()
        try:
            _enable_keepalive(writer)
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    await self._handshake(conn)
            except TimeoutError:
                raise _EslError(f"no auth/subscription answer within {self._connect_timeout_s} s") from None
            self.state = "connected"
            self._session_connected = True
            self._conn = conn
            logger.info(
                "ESL %s: connected, %s",
                self._url.address,
                f"subscribed to {len(self._subscribed)} event keys" if self._subscribed else "no events",
            )
            if self._resubscribe_requested:
                self._update_subscription(conn)
            await self._read_events(conn)
        finally:
            self._conn = None
            await conn.close()

    async def _handshake(self, conn: _Connection) -> None:
        frame = await conn.next_frame()
        if frame.content_type == "text/rude-rejection":
            raise _Disconnected(f"FreeSWITCH refused the connection (ACL): {_excerpt(frame.body)}")
        if frame.content_type != "auth/request":
            raise _EslError(f"expected auth/request, got {frame.content_type!r}")
        conn.send(f"auth {self._url.password}")
        reply = await self._await_reply(conn)
        if not reply.startswith("+OK"):
            raise _AuthFailed(f"authentication failed: {self._redact(reply)!r}")

        self._resubscribe_requested = False
        keys = _subscription_keys(self._event_keys())
        command = subscription_command(keys) or "noevents"
        conn.send(command)
        reply = await self._await_reply(conn)
        # noevents on a fresh connection answers "-ERR not listening for events", which is what we want.
        if command != "noevents" and not reply.startswith("+OK"):
            # Staying connected beats a reconnect loop failing the same way; a later resubscribe() may fix it.
            logger.error("ESL %s: FreeSWITCH refused %r: %s", self._url.address, command, _excerpt(reply))
        self._subscribed = keys

    async def _await_reply(self, conn: _Connection) -> str:
        """Read up to the command/reply of the command just sent; events met on the way are kept."""
        while True:
            frame = await conn.next_frame()
            content_type = frame.content_type
            if content_type == "command/reply":
                return frame.headers.get("Reply-Text", "").strip()
            if self._handle_frame(frame):
                raise _Disconnected(f"FreeSWITCH sent {content_type} during the handshake")

    async def _read_events(self, conn: _Connection) -> None:
        while True:
            frame = await conn.next_frame()
            if self._handle_frame(frame):
                # Events already received behind the notice are real events: keep them.
                for later in conn.take_buffered():
                    self._handle_frame(later)
                raise _Disconnected("FreeSWITCH sent text/disconnect-notice")

    def _handle_frame(self, frame: Frame) -> bool:
        """Dispatch one frame; True when it announces the end of the connection."""
        content_type = frame.content_type
        if content_type.startswith("text/event-"):
            self._accept_event_frame(frame)
        elif content_type in ("command/reply", "api/response"):
            self._on_reply(frame)
        elif content_type == "text/disconnect-notice" and frame.headers.get("Content-Disposition") == "linger":
            # A controlled channel hung up but the socket lingers (outbound mode): more events follow.
            logger.info("ESL %s: disconnect-notice with linger; staying connected", self._url.address)
        elif content_type in ("text/disconnect-notice", "text/rude-rejection"):
            return True
        else:
            logger.debug("ESL: ignoring a %r frame", content_type)
        return False

    def _on_reply(self, frame: Frame) -> None:
        verb = self._pending_replies.popleft() if self._pending_replies else "?"
        reply = frame.headers.get("Reply-Text", "").strip()
        if reply.startswith("-ERR") and verb != "noevents":
            logger.error("ESL %s: FreeSWITCH refused %s: %s", self._url.address, verb, _excerpt(reply))
        else:
            logger.debug("ESL %s: %s -> %s", self._url.address, verb, _excerpt(reply))

    def _command(self, conn: _Connection, command: str) -> None:
        conn.send(command)
        self._pending_replies.append(command.partition(" ")[0])
        logger.debug("ESL %s: sent %s", self._url.address, _excerpt(command))

    def _update_subscription(self, conn: _Connection) -> None:
        """Send only the difference between the live subscription and event_keys().

        Not `noevents` + `event json ...`: mod_event_socket's noevents also flushes the events queued
        for this socket, and the gap between the two commands would lose events of unchanged keys.
        """
        self._resubscribe_requested = False
        if not conn.writable:
            return  # the connection is ending; the next one subscribes with fresh keys
        wanted = _subscription_keys(self._event_keys())
        added = wanted - self._subscribed
        removed = self._subscribed - wanted
        if added:
            self._command(conn, subscription_command(added))
        if removed:
            # nixevent cannot clear a bare CUSTOM; the few subclass-less CUSTOM events left match no hook.
            self._command(conn, "nixevent " + " ".join(_subscription_tokens(removed)))
        self._subscribed = wanted

    def _redact(self, text: str) -> str:
        return text.replace(self._url.password, "***") if self._url.password else text

    # ------------------------------------------------------------------ events and the sink

    def _accept_event_frame(self, frame: Frame) -> None:
        try:
            event = decode_frame_event(frame)
        except (InvalidEvent, ValueError) as exc:
            self.events_failed += 1
            self._dropped("undecodable")
            logger.warning(
                "ESL %s: dropping an undecodable %s frame (%s): %s",
                self._url.address,
                frame.content_type,
                _excerpt(str(exc)),
                _excerpt(frame.body),
            )
            return
        if event is None:
            return
        self.events_received += 1
        if len(self._backlog) >= self._backlog_max:
            self._backlog.popleft()
            self.events_dropped += 1
            self._dropped("backlog_full")
            if not self._overflowing:
                self._overflowing = True
                logger.error(
                    "ESL %s: the sink is not keeping up and the backlog holds %d events; "
                    "dropping the oldest until it recovers",
                    self._url.address,
                    self._backlog_max,
                )
        self._backlog.append(event)
        self._idle.clear()
        self._wakeup.set()

    def _dropped(self, reason: str) -> None:
        if self._on_dropped is not None:
            self._on_dropped(reason)

    async def _deliver_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._backlog:
                count = min(self._batch_max, len(self._backlog))
                batch = [self._backlog.popleft() for _ in range(count)]
                self._in_flight = count
                await self._deliver(batch)
                self._in_flight = 0
                if self._overflowing and len(self._backlog) < self._backlog_max:
                    self._overflowing = False
                    logger.warning(
                        "ESL %s: the sink caught up; %d events were dropped so far",
                        self._url.address,
                        self.events_dropped,
                    )
            self._idle.set()

    async def _deliver(self, batch: list[Event]) -> None:
        """Hand one batch to the sink, retrying the very same batch until it is stored."""
        failures = 0
        while True:
            try:
                await self._sink(batch)
            except Exception as exc:  # neither the sink's outage (database down) nor its bug may lose events
                failures += 1
                delay_s = _backoff_s(failures, self._sink_retry_initial_s, self._sink_retry_max_s)
                if isinstance(exc, Unavailable):
                    logger.warning(
                        "ESL: the sink failed to store %d events (attempt %d): %s; retrying in %.2f s",
                        len(batch),
                        failures,
                        _excerpt(exc),
                        delay_s,
                    )
                else:
                    logger.exception(
                        "ESL: the sink failed to store %d events (attempt %d), unexpectedly; retrying in %.2f s",
                        len(batch),
                        failures,
                        delay_s,
                    )
                await asyncio.sleep(delay_s)
            else:
                if failures:
                    logger.info("ESL: the sink stored %d events after %d failures", len(batch), failures)
                return
