"""Owns the RabbitMQ source: mod_amqp events from TAP.Events/TAP.CC-Events, bound per hooked event key."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable, Collection, Coroutine, Mapping
from typing import Any, Final, Literal
from urllib.parse import unquote, urlsplit

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustQueue
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from aio_pika.robust_connection import RobustConnection
from pamqp.exceptions import PAMQPException

from switchhook.core.errors import InvalidEvent, Unavailable
from switchhook.core.events import Event, decode_json_event, event_key
from switchhook.ingest.routing import STOCK_LAYOUT, Layout, bindings_for
from switchhook.ingest.source import Sink, SourceState

__all__ = ["STOCK_LAYOUT", "AmqpSource", "Layout", "bindings_for", "routing_key_for"]

logger = logging.getLogger("switchhook.ingest.amqp")

_RECONNECT_FIRST_S: Final = 0.5
_CONNECT_TIMEOUT_S: Final = 10.0
_BIND_TIMEOUT_S: Final = 5.0
_BIND_RETRY_S: Final = 5.0
_CANCEL_TIMEOUT_S: Final = 2.0
_SINK_BACKOFF_FIRST_S: Final = 0.1
_SINK_BACKOFF_MAX_S: Final = 5.0
_BODY_EXCERPT_CHARS: Final = 200
# The broker (or the network to it) failing, or the store behind the sink: an outage, logged as one line. Anything
# else raised in a background step is a bug and is logged with its traceback.
_OUTAGES: Final = (AMQPError, PAMQPException, ChannelInvalidStateError, OSError, TimeoutError, Unavailable)


def routing_key_for(event: Event, layout: Layout = STOCK_LAYOUT) -> str:
    """The routing key mod_amqp publishes this event with (FreeSWITCH's stock layout unless told)."""
    return layout.routing_key(event)


def _describe_url(url: str) -> tuple[str, str]:
    """(`host:port vhost /x` for logs, the password as written, to redact); the URL is never logged."""
    parts = urlsplit(url)
    default_port = 5671 if parts.scheme == "amqps" else 5672
    try:
        port = parts.port or default_port
    except ValueError:
        port = default_port
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return f"{parts.hostname or 'localhost'}:{port} vhost {vhost}", parts.password or ""


class AmqpSource:
    """Consumes mod_amqp JSON events from one durable queue and hands them to `sink` in batches.

    A batch is acked only after `await sink(events)` returns (the sink stores the deliveries durably);
    if the sink raises, the batch is requeued after a backoff. Several processes may consume the same
    queue as competing consumers. Call `hooks_changed()` (or await `refresh_bindings()`) whenever the set of
    hooked event keys changes. Implements `ingest.source.EventSource`.

    `layout` is the routing-key layout of the mod_amqp profile publishing on `events_exchange`, `cc_layout`
    that of the one on `cc_exchange` (None: not bound). A layout without Event-Name and Event-Subclass
    words binds `#`: then every event reaches us and those of unhooked keys are acked and dropped here.
    """

    def __init__(
        self,
        url: str,
        sink: Sink,
        event_keys: Callable[[], Collection[str]],
        *,
        queue_name: str = "switchhook.events",
        events_exchange: str = "TAP.Events",
        cc_exchange: str = "TAP.CC-Events",
        layout: Layout = STOCK_LAYOUT,
        cc_layout: Layout | None = None,
        prefetch: int = 256,
        batch_max: int = 256,
        batch_linger_s: float = 0.005,
        reconnect_max_s: float = 30.0,
        stop_timeout_s: float = 5.0,
        on_dropped: Callable[[str], None] | None = None,
    ) -> None:
        if prefetch < 1 or batch_max < 1:
            raise ValueError("prefetch and batch_max must be at least 1")
        if batch_linger_s < 0 or reconnect_max_s <= 0 or stop_timeout_s < 0:
            raise ValueError("batch_linger_s and stop_timeout_s must be >= 0, reconnect_max_s > 0")
        self._url = url
        self._where, self._password = _describe_url(url)
        self._sink = sink
        self._event_keys = event_keys
        self._queue_name = queue_name
        self._events_exchange = events_exchange
        self._cc_exchange = cc_exchange
        self.layout = layout
        self.cc_layout = cc_layout
        self._prefetch = prefetch
        self._batch_max = batch_max
        self._batch_linger_s = batch_linger_s
        self._reconnect_max_s = reconnect_max_s
        self._stop_timeout_s = stop_timeout_s
        # Told the reason (`undecodable`, `no_event_name`) of every message rejected: the runtime counts them.
        self._on_dropped = on_dropped

        self.state: SourceState = "disconnected"
        self.events_received = 0  # events handed to the sink (a redelivered one counts again)
        self.messages_rejected = 0  # bodies that are not a JSON object with an Event-Name
        self.reconnects = 0
        self.sink_failures = 0
        self.events_unhooked = 0  # let through by a `#` binding, of no hooked key: acked and dropped

        # Filled by the consumer callback in delivery order; None only wakes the batch loop on stop.
        self._buffer: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        self._connection: RobustConnection | None = None
        self._queue: AbstractRobustQueue | None = None
        self._consumer_tag: str | None = None
        self._bound: set[tuple[str, str]] = set()  # what this source bound, to diff against
        self._broad = False  # a `#` binding is in force: filter by hooked key in process
        self._bindings_stale = False  # a key change not yet applied (broker away, or a failed bind)
        self._bind_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None  # connect + batch loop; stop() may cut it short
        self._done = asyncio.Event()  # run() has closed everything
        self._backoff_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._consecutive_sink_failures = 0

    name: Final = "amqp"

    def counters(self) -> Mapping[str, int]:
        """Totals since start: events `received` (a redelivered one counts again), `unhooked` and `rejected`
        messages, `reconnects`, `sink_failures`."""
        return {
            "received": self.events_received,
            "unhooked": self.events_unhooked,
            "rejected": self.messages_rejected,
            "reconnects": self.reconnects,
            "sink_failures": self.sink_failures,
        }

    def health(self) -> dict[str, object]:
        """State, counters, layouts and the bindings in force, for /health."""
        layouts: dict[str, str] = {self._events_exchange: self.layout.format_fields}
        if self.cc_layout is not None:
            layouts[self._cc_exchange] = self.cc_layout.format_fields
        return {
            "state": self.state,
            "received": self.events_received,
            "unhooked": self.events_unhooked,
            "rejected": self.messages_rejected,
            "queue": self._queue_name,
            "layouts": layouts,
            "bindings": [{"exchange": exchange, "key": key} for exchange, key in sorted(self._bound)],
        }

    def hooks_changed(self) -> None:
        """The hooked event keys may have changed: re-bind in the background (see `refresh_bindings`)."""
        self._spawn(self.refresh_bindings())

    # -- lifecycle -------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect (retrying with backoff), bind, consume and feed the sink until `stop()` is called."""
        if self._worker is not None:
            raise RuntimeError("AmqpSource.run() can only be called once")
        self._log_layouts()
        # The work runs in its own task so that stop() can cut a stuck sink short without cancelling
        # whoever awaits run().
        self._worker = asyncio.get_running_loop().create_task(self._work())
        try:
            await self._worker
        except asyncio.CancelledError:
            if _cancelled_by_caller():
                raise
        finally:
            try:
                await self._close()
            finally:
                self._done.set()

    def _log_layouts(self) -> None:
        layouts = [(self._events_exchange, self.layout)]
        if self.cc_layout is not None:
            layouts.append((self._cc_exchange, self.cc_layout))
        for exchange, layout in layouts:
            logger.info("mod_amqp routing keys on %s laid out as format_fields %s", exchange, layout.format_fields)
            if not layout.selective:
                logger.warning(
                    "the layout on %s has no Event-Name or Event-Subclass word: binding `#`, so every event "
                    "published there reaches switchhook and those no hook uses are dropped after decoding",
                    exchange,
                )

    async def _work(self) -> None:
        if await self._open():
            await self._consume_batches()

    async def stop(self) -> None:
        """Stop consuming; an in-flight batch gets `stop_timeout_s` to finish, unacked ones are requeued."""
        queue, tag = self._queue, self._consumer_tag
        if queue is not None and tag is not None and self.state == "connected" and not self._stopping.is_set():
            # Stop the broker pushing more before the batch loop closes the channel (so this RPC is not
            # cut off by our own close); failure is harmless: closing the channel requeues anyway.
            try:
                async with asyncio.timeout(_CANCEL_TIMEOUT_S):
                    await queue.cancel(tag)
            except (Exception, asyncio.CancelledError):
                if _cancelled_by_caller():
                    raise
        self._stopping.set()
        self._buffer.put_nowait(None)
        worker = self._worker
        if worker is None:
            return
        try:
            async with asyncio.timeout(self._stop_timeout_s):
                await self._done.wait()
        except TimeoutError:
            # A stuck sink (or connect): cancel it; the unacked batch returns to the queue when the
            # channel closes.
            worker.cancel()
            await self._done.wait()

    async def _open(self) -> bool:
        """Connect until it works (True) or stop() is called (False)."""
        delay = _RECONNECT_FIRST_S
        while not self._stopping.is_set():
            self.state = "connecting"
            try:
                await self._connect()
            except (Exception, asyncio.CancelledError) as exc:
                if _cancelled_by_caller():
                    raise
                # Refused, auth, a declare the broker rejects, or a drop mid-setup (aiormq cancels the
                # pending RPC): all retried, an operator may fix them. A bug is retried too, but says so.
                await self._discard_connection()
                if _is_outage(exc):
                    logger.warning(
                        "RabbitMQ at %s unavailable (%s); retrying in %.1f s", self._where, self._redact(exc), delay
                    )
                else:
                    self._log_bug(exc, "connecting to RabbitMQ at %s failed; retrying in %.1f s", self._where, delay)
                if await self._wait_stopping(delay):
                    return False
                delay = min(delay * 2, self._reconnect_max_s)
            else:
                return True
        return False

    async def _connect(self) -> None:
        connection = await aio_pika.connect_robust(
            self._url,
            timeout=_CONNECT_TIMEOUT_S,
            reconnect_interval=_RECONNECT_FIRST_S,
            client_properties={"connection_name": "switchhook ingest"},
        )
        self._connection = connection
        connection.close_callbacks.add(self._on_connection_lost)
        connection.reconnect_callbacks.add(self._on_reconnected)
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=self._prefetch)
        # Same arguments as mod_amqp's own declaration (durable topic), so both sides can declare first.
        for name in (self._events_exchange, self._cc_exchange):
            await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(self._queue_name, durable=True, exclusive=False, auto_delete=False)
        self._queue = queue
        # A robust queue re-binds what it bound on reconnect; this also re-applies key changes made
        # while the broker was away (or after a channel-level error).
        channel.reopen_callbacks.add(self._on_channel_reopened)
        self._bound.clear()
        self._bindings_stale = False
        await self._apply_bindings()
        self._consumer_tag = await queue.consume(self._on_message, no_ack=False)
        self.state = "connected"
        logger.info("consuming queue %s at %s (%d bindings)", self._queue_name, self._where, len(self._bound))
        if self._bindings_stale:  # keys changed while we were connecting
            await self._reconcile_bindings()

    async def _discard_connection(self) -> None:
        connection, self._connection = self._connection, None
        self._queue = None
        self._consumer_tag = None
        if connection is None:
            return
        # Our own close must not look like a lost connection.
        connection.close_callbacks.discard(self._on_connection_lost)
        connection.reconnect_callbacks.discard(self._on_reconnected)
        try:
            await connection.close()
        except (Exception, asyncio.CancelledError):
            if _cancelled_by_caller():
                raise

    async def _close(self) -> None:
        for task in (self._backoff_task, *self._background):
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in (self._backoff_task, *self._background) if t is not None), return_exceptions=True
        )
        await self._discard_connection()
        self.state = "disconnected"
        logger.info("stopped consuming from %s", self._where)

    async def _wait_stopping(self, delay_s: float) -> bool:
        """Sleep `delay_s`, waking early (True) when stop() is called."""
        try:
            async with asyncio.timeout(delay_s):
                await self._stopping.wait()
        except TimeoutError:
            return False
        return True

    def _redact(self, exc: BaseException) -> str:
        return self._redact_text(f"{type(exc).__name__}: {exc}")

    def _redact_text(self, text: str) -> str:
        if self._password:
            # Libraries may echo the URL back, with the password as written or percent-decoded.
            for secret in (self._password, unquote(self._password)):
                text = text.replace(secret, "******")
        return text

    def _log_bug(self, exc: BaseException, message: str, *args: object) -> None:
        """A failure that is no outage, logged with its traceback so that it does not read as one.

        The traceback is formatted here to be redacted: a library may echo the URL, password included.
        """
        trace = self._redact_text("".join(traceback.format_exception(exc)).rstrip())
        logger.error(message + "\n%s", *args, trace)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- reconnection (aio-pika reconnects; we track state and back off) -----------------------------

    def _on_connection_lost(self, _connection: object, exc: BaseException | None = None) -> None:
        if self._stopping.is_set() or self.state != "connected":
            return
        self.state = "connecting"
        logger.warning("lost RabbitMQ at %s (%s); reconnecting", self._where, self._redact(exc) if exc else "closed")
        if self._backoff_task is None or self._backoff_task.done():
            self._backoff_task = asyncio.get_running_loop().create_task(self._back_off_reconnects())

    async def _back_off_reconnects(self) -> None:
        # RobustConnection retries at a fixed `reconnect_interval` that it re-reads before every sleep:
        # growing it while we are down turns its loop into exponential backoff, capped at reconnect_max_s.
        delay = _RECONNECT_FIRST_S
        while self.state == "connecting" and self._connection is not None:
            self._connection.reconnect_interval = delay
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._reconnect_max_s)

    def _on_reconnected(self, _connection: object) -> None:
        self.reconnects += 1
        self.state = "connected"
        # The next outage starts its backoff from the beginning again.
        if self._backoff_task is not None:
            self._backoff_task.cancel()
            self._backoff_task = None
        if self._connection is not None:
            self._connection.reconnect_interval = _RECONNECT_FIRST_S
        logger.info("reconnected to RabbitMQ at %s; consumption resumes", self._where)
        self._spawn(self._reconcile_bindings())

    def _on_channel_reopened(self, _channel: object) -> None:
        # Not awaited inline: the callback runs inside aio-pika's restore, which holds the channel's lock.
        self._spawn(self._reconcile_bindings())

    # -- bindings --------------------------------------------------------------------------------------

    async def refresh_bindings(self) -> None:
        """Follow the hooked event keys: bind keys newly used, unbind keys no longer used. Idempotent.

        Never raises for broker trouble and never waits for a reconnect: a change the broker cannot take
        now is applied once the connection is back.
        """
        if self._queue is None or self.state != "connected":
            self._bindings_stale = True
            return
        await self._reconcile_bindings()

    async def _reconcile_bindings(self) -> None:
        if self._queue is None or self._stopping.is_set():
            return
        self._bindings_stale = False
        try:
            async with asyncio.timeout(_BIND_TIMEOUT_S):
                await self._apply_bindings()
        except (Exception, asyncio.CancelledError) as exc:
            if _cancelled_by_caller():
                raise
            self._bindings_stale = True
            if _is_outage(exc):
                logger.warning("could not update bindings at %s (%s); retrying", self._where, self._redact(exc))
            else:
                self._log_bug(exc, "updating bindings at %s failed; retrying", self._where)
            self._spawn(self._retry_bindings())

    async def _retry_bindings(self) -> None:
        if not await self._wait_stopping(_BIND_RETRY_S) and self._bindings_stale and self.state == "connected":
            await self._reconcile_bindings()

    async def _apply_bindings(self) -> None:
        async with self._bind_lock:
            queue = self._queue
            if queue is None:
                return
            wanted = self.wanted_bindings()
            self._broad = any(routing_key == "#" for _, routing_key in wanted)
            for exchange, routing_key in sorted(wanted - self._bound):
                await queue.bind(exchange, routing_key)
                self._bound.add((exchange, routing_key))
                logger.info("bound %s to %s with %s", self._queue_name, exchange, routing_key)
            for exchange, routing_key in sorted(self._bound - wanted):
                await queue.unbind(exchange, routing_key)
                self._bound.discard((exchange, routing_key))
                logger.info("unbound %s from %s with %s", self._queue_name, exchange, routing_key)

    def wanted_bindings(self) -> set[tuple[str, str]]:
        """(exchange, binding key) pairs the hooked event keys call for under the configured layouts."""
        wanted: set[tuple[str, str]] = set()
        for key in self._event_keys():
            wanted.update(bindings_for(key, self.layout, self.cc_layout, self._events_exchange, self._cc_exchange))
        return wanted

    # -- consumption -----------------------------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # No await before the put: aio-pika starts one task per delivery, in order, so order is kept.
        self._buffer.put_nowait(message)

    async def _consume_batches(self) -> None:
        while not self._stopping.is_set():
            batch = await self._next_batch()
            if batch:
                await self._handle(batch)

    async def _next_batch(self) -> list[AbstractIncomingMessage]:
        """Up to batch_max messages, waiting at most batch_linger_s after the first one."""
        first = await self._buffer.get()
        if first is None:
            return []
        batch = [first]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._batch_linger_s
        while len(batch) < self._batch_max:
            if self._buffer.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        item = await self._buffer.get()
                except TimeoutError:
                    break
            else:
                item = self._buffer.get_nowait()
            if item is None:
                break
            batch.append(item)
        return batch

    async def _handle(self, batch: list[AbstractIncomingMessage]) -> None:
        events: list[Event] = []
        accepted: list[AbstractIncomingMessage] = []
        for message in batch:
            if not _channel_open(message):
                continue  # delivered on a channel that has since died: the broker redelivers it
            event = self._decode(message)
            if event is None:
                await _settle(message, "reject")
                continue
            if self._broad and event_key(event) not in self._event_keys():
                # Only a `#` binding lets these in: nothing hooks them, so they go no further.
                self.events_unhooked += 1
                await _settle(message, "ack")
                continue
            events.append(event)
            accepted.append(message)
        if not accepted:
            return
        self.events_received += len(accepted)
        try:
            await self._sink(events)
        except Exception as exc:
            self.sink_failures += 1
            self._consecutive_sink_failures += 1
            delay = min(_SINK_BACKOFF_FIRST_S * 2 ** (self._consecutive_sink_failures - 1), _SINK_BACKOFF_MAX_S)
            if isinstance(exc, Unavailable):  # the store is down: the batch waits for it, nothing is wrong here
                logger.warning(
                    "could not store a batch of %d events (%s); requeueing it in %.1f s", len(events), exc, delay
                )
            else:
                logger.exception("storing a batch of %d events failed; requeueing it in %.1f s", len(events), delay)
            # Requeued messages come straight back: wait first so a down database is not hammered.
            await self._wait_stopping(delay)
            await _settle_batch(accepted, "nack")
            return
        self._consecutive_sink_failures = 0
        await _settle_batch(accepted, "ack")

    def _decode(self, message: AbstractIncomingMessage) -> Event | None:
        """The event, or None (counted and logged) for a body that can never become one."""
        try:
            event = decode_json_event(message.body)
        except InvalidEvent as exc:
            reason, code = exc.message, "undecodable"
        else:
            if event_key(event) is not None:
                return event
            reason, code = "event has no Event-Name", "no_event_name"
        self.messages_rejected += 1
        if self._on_dropped is not None:
            self._on_dropped(code)
        excerpt = message.body[:_BODY_EXCERPT_CHARS].decode("utf-8", "replace")[:_BODY_EXCERPT_CHARS]
        logger.warning(
            "rejecting message from exchange %s, routing key %s: %s; body starts %r",
            message.exchange,
            message.routing_key,
            reason,
            excerpt,
        )
        return None


def _is_outage(exc: BaseException) -> bool:
    """The broker or the store away (or aiormq cancelling an RPC its channel lost), not a bug of ours."""
    return isinstance(exc, (*_OUTAGES, asyncio.CancelledError))


def _cancelled_by_caller() -> bool:
    """Whether a CancelledError is meant for us, rather than aiormq cancelling an RPC its channel lost."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _channel_open(message: AbstractIncomingMessage) -> bool:
    try:
        message.channel  # noqa: B018 - the property raises once the delivery channel is closed
    except ChannelInvalidStateError:
        return False
    return True


async def _settle(
    message: AbstractIncomingMessage, how: Literal["ack", "nack", "reject"], *, multiple: bool = False
) -> None:
    """Ack, nack (requeue) or reject (drop) one delivery; a dead channel already requeued it."""
    try:
        if how == "ack":
            await message.ack(multiple=multiple)
        elif how == "nack":
            await message.nack(multiple=multiple, requeue=True)
        else:
            await message.reject(requeue=False)
    except (Exception, asyncio.CancelledError) as exc:
        if _cancelled_by_caller():
            raise
        logger.info("could not %s delivery %s (%s); the broker redelivers it", how, message.delivery_tag, exc)


async def _settle_batch(messages: list[AbstractIncomingMessage], how: Literal["ack", "nack"]) -> None:
    """Settle a batch with one `multiple` frame per channel.

    Safe because batches are handled one at a time: every earlier delivery on that channel is already
    settled, and later ones (still buffered) have higher delivery tags.
    """
    last_by_channel: dict[int, AbstractIncomingMessage] = {}
    for message in messages:
        try:
            last_by_channel[id(message.channel)] = message
        except ChannelInvalidStateError:
            continue  # its channel died: the broker requeued it
    for message in last_by_channel.values():
        await _settle(message, how, multiple=True)
