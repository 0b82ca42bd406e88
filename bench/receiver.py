"""Owns the bench receiver: a keep-alive HTTP/1.1 server in its own process that answers 200 at once.

It also runs a second port that accepts connections and never answers (the dead endpoint of scenario 5).
Every answered request is counted; when its body carries `"bench_ts":"<epoch s>"` (set by the load
generator just before it posted the event), `arrival - bench_ts` is recorded as that delivery's latency.
A reset may name paths (`/a`, `/b`) to keep apart: requests whose first path segment is one of them are
also counted in that path's own figures (scenario 5h reads domain B's deliveries beside domain A's).
A reset may also ask for the per-call check (`("reset", paths, answer_delay_s)`, scenarios calls and callso):
each request's call (`X-Call-Id`) and event (`Event-Sequence` in the body) are noted, the answer waits
`answer_delay_s` (so a request has a time in flight, as at a real endpoint), and a request of a call that
arrives while another of that call is unanswered is an overlap, one with a lower sequence than one already
received is out of order. Without it nothing is parsed per request (the other scenarios' hot path).
The parent talks to it over a multiprocessing pipe: `count`, `stats`, `reset` / `("reset", paths[, delay])`,
`stop`.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import re
import signal
import threading
import time
from array import array
from multiprocessing.connection import Connection
from typing import Any

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
_BENCH_TS = re.compile(rb'"bench_ts":"?([0-9]+(?:\.[0-9]+)?)')
_CONTENT_LENGTH = b"\r\ncontent-length:"
_CALL_ID = b"\r\nx-call-id:"
_EVENT_SEQUENCE = re.compile(rb'"Event-Sequence"\s*:\s*"?([0-9]+)')


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def first_segment(path: bytes) -> bytes:
    """`/b`, `/b/x`, `/b?q` -> `/b`: the key a request is grouped under (paths are lowercased)."""
    segment = path[1:].split(b"/", 1)[0].split(b"?", 1)[0]
    return b"/" + segment


class _Tally:
    """Count, first/last arrival and latencies of one set of requests. Times are epoch s, latencies ms."""

    def __init__(self) -> None:
        self.count = 0
        self.first_at = 0.0
        self.last_at = 0.0
        self.without_ts = 0
        self.latencies_ms = array("d")

    def add(self, now: float, latency_ms: float | None) -> None:
        if not self.count:
            self.first_at = now
        self.count += 1
        self.last_at = now
        if latency_ms is None:
            self.without_ts += 1
        else:
            self.latencies_ms.append(latency_ms)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "count": self.count, "first_at": self.first_at, "last_at": self.last_at,
            "without_ts": self.without_ts, "latency_samples": len(ordered),
            "p50_ms": percentile(ordered, 50), "p95_ms": percentile(ordered, 95),
            "p99_ms": percentile(ordered, 99), "max_ms": ordered[-1] if ordered else None,
        }  # fmt: skip


class Calls:
    """The per-call check: requests in flight and the highest `Event-Sequence` received, per call."""

    def __init__(self, answer_delay_s: float) -> None:
        self.answer_delay_s = answer_delay_s
        self.in_flight: dict[bytes, int] = {}
        self.highest: dict[bytes, int] = {}
        self.sequences: dict[bytes, set[int]] = {}
        self.requests = 0
        self.without_call = 0
        self.overlaps = 0  # a request of a call while another of it was unanswered
        self.out_of_order = 0  # a request whose sequence is below one of its call received before

    def arrive(self, head: bytes, body: bytes | bytearray) -> bytes | None:
        """Note a request (its lowercased header block and body); its call, to give to `answered`."""
        self.requests += 1
        at = head.find(_CALL_ID)
        if at < 0:
            self.without_call += 1
            return None
        stop = head.find(b"\r\n", at + 2)
        call = head[at + len(_CALL_ID) : stop if stop >= 0 else len(head)].strip()
        if self.in_flight.get(call, 0):
            self.overlaps += 1
        self.in_flight[call] = self.in_flight.get(call, 0) + 1
        match = _EVENT_SEQUENCE.search(body)
        if match is not None:
            sequence = int(match.group(1))
            if sequence < self.highest.get(call, -1):
                self.out_of_order += 1
            self.highest[call] = max(sequence, self.highest.get(call, -1))
            self.sequences.setdefault(call, set()).add(sequence)
        return call

    def answered(self, call: bytes | None) -> None:
        if call is not None:
            self.in_flight[call] -= 1

    def summary(self) -> dict[str, Any]:
        events = [len(s) for s in self.sequences.values()]
        return {
            "calls": len(self.highest), "requests": self.requests, "without_call": self.without_call,
            "overlaps": self.overlaps, "out_of_order": self.out_of_order,
            "events_per_call_min": min(events) if events else 0, "events_per_call_max": max(events) if events else 0,
        }  # fmt: skip


class Stats(_Tally):
    """What the answering port saw since the last reset, in all and per tracked path."""

    def __init__(self) -> None:
        self.reset()

    def reset(self, paths: tuple[str, ...] = (), answer_delay_s: float | None = None) -> None:
        _Tally.__init__(self)
        self.calls = None if answer_delay_s is None else Calls(answer_delay_s)
        self.connections = 0
        self.cpu_at_reset_s = time.process_time()
        # Keyed by the lowercased first path segment; empty (nothing parsed per request) unless asked.
        self.paths = {first_segment(p.lower().encode()): _Tally() for p in paths}

    def record(self, now: float, body: bytes | bytearray, request_line: bytes = b"") -> None:
        match = _BENCH_TS.search(body)
        latency_ms = None if match is None else (now - float(match.group(1))) * 1000
        self.add(now, latency_ms)
        if self.paths:
            parts = request_line.split(b" ", 2)
            tally = self.paths.get(first_segment(parts[1])) if len(parts) > 1 else None
            if tally is not None:
                tally.add(now, latency_ms)

    def path_counts(self) -> dict[str, int]:
        return {key.decode(): tally.count for key, tally in self.paths.items()}

    def summary(self) -> dict[str, Any]:
        return {
            **super().summary(), "connections": self.connections,
            "cpu_s": time.process_time() - self.cpu_at_reset_s,
            "paths": {key.decode(): tally.summary() for key, tally in self.paths.items()},
            **({"calls": self.calls.summary()} if self.calls is not None else {}),
        }  # fmt: skip


class _Answering(asyncio.Protocol):
    """Just enough HTTP/1.1: header block, Content-Length or chunked body, keep-alive, pipelining."""

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment] # uvloop's is not an asyncio.Transport subclass
        self._stats.connections += 1

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        replies = 0
        close = False
        while True:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                close = len(buffer) > MAX_HEADER_BYTES
                break
            head = bytes(buffer[:head_end]).lower()
            body_start = head_end + 4
            if b"\r\ntransfer-encoding: chunked" in head:
                try:
                    parsed = _chunked(buffer, body_start)
                except ValueError:  # not HTTP we understand: hang up
                    close = True
                    break
                if parsed is None:
                    break
                body, end = parsed
            else:
                length = _content_length(head)
                if length is None or length > MAX_BODY_BYTES:
                    close = True
                    break
                end = body_start + length
                if len(buffer) < end:
                    break
                body = buffer[body_start:end]
            request_line = head.split(b"\r\n", 1)[0]
            self._stats.record(time.time(), body, request_line)
            if self._stats.calls is not None:  # the per-call check: answered later, one by one
                self._answer_later(self._stats.calls, self._stats.calls.arrive(head, body))
            else:
                replies += 1
            del buffer[:end]
            if b"\r\nconnection: close" in head or (
                request_line.endswith(b"http/1.0") and b"\r\nconnection: keep-alive" not in head
            ):
                close = True
                break
        if self._transport is None:
            return
        if replies:
            self._transport.write(RESPONSE * replies)
        if close:
            self._transport.close()

    def _answer_later(self, calls: Calls, call: bytes | None) -> None:
        # One delay for all: the answers of a connection still go out in the order its requests came.
        asyncio.get_running_loop().call_later(calls.answer_delay_s, self._answer, calls, call)

    def _answer(self, calls: Calls, call: bytes | None) -> None:
        calls.answered(call)
        if self._transport is not None:
            self._transport.write(RESPONSE)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


def _content_length(head: bytes) -> int | None:
    at = head.find(_CONTENT_LENGTH)
    if at < 0:
        return 0
    start = at + len(_CONTENT_LENGTH)
    stop = head.find(b"\r\n", start)
    text = head[start : stop if stop >= 0 else len(head)].strip()
    return int(text) if text.isdigit() else None


def _chunked(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a complete chunked body starting at `start`: (body, end offset), or None if incomplete."""
    parts: list[bytes] = []
    pos = start
    for _ in range(100_000):  # bounded: no body has more chunks than that
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buffer[pos:line_end]).split(b";", 1)[0].strip() or b"0", 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", pos - 2)
            return (b"".join(parts), trailer_end + 4) if trailer_end >= 0 else None
        if len(buffer) < pos + size + 2:
            return None
        parts.append(bytes(buffer[pos : pos + size]))
        pos += size + 2
    raise ValueError("too many chunks")


class _Blackhole(asyncio.Protocol):
    """Accepts, reads and never answers: the sender can only time out."""

    def __init__(self, counters: dict[str, int], open_transports: set[asyncio.BaseTransport]) -> None:
        self._counters = counters
        self._open = open_transports
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._open.add(transport)
        self._counters["connections"] += 1

    def data_received(self, data: bytes) -> None:
        self._counters["bytes"] += len(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._open.discard(self._transport)


def run(conn: Connection, lifetime_s: float) -> None:
    """Process entry point: serve until told to stop, the parent goes away, or `lifetime_s` passes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop is a switchhook dependency
        runner = asyncio.Runner()
    with runner:
        runner.run(_serve(conn, lifetime_s))


async def _serve(conn: Connection, lifetime_s: float) -> None:
    loop = asyncio.get_running_loop()
    stats = Stats()
    hole_counters = {"connections": 0, "bytes": 0}
    hole_transports: set[asyncio.BaseTransport] = set()
    answering = await loop.create_server(lambda: _Answering(stats), "127.0.0.1", 0, backlog=2048)
    blackhole = await loop.create_server(
        lambda: _Blackhole(hole_counters, hole_transports), "127.0.0.1", 0, backlog=2048
    )
    done: asyncio.Future[None] = loop.create_future()

    def finish() -> None:
        if not done.done():
            done.set_result(None)

    def on_command() -> None:
        try:
            command = conn.recv()
            if command == "count":
                conn.send((stats.count, stats.last_at, stats.path_counts()))
            elif command == "stats":
                conn.send({**stats.summary(), "blackhole": dict(hole_counters)})
            elif command == "reset" or (isinstance(command, tuple) and command[0] == "reset"):
                paths = tuple(command[1]) if isinstance(command, tuple) else ()
                stats.reset(paths, command[2] if isinstance(command, tuple) and len(command) > 2 else None)
                hole_counters.update(connections=0, bytes=0)
                conn.send("ok")
            else:  # "stop": the parent does not wait for an answer
                finish()
        except (EOFError, OSError):  # the parent is gone
            finish()

    loop.add_reader(conn.fileno(), on_command)
    loop.call_later(lifetime_s, finish)
    conn.send(("ready", _port(answering), _port(blackhole)))
    try:
        await done
    finally:
        loop.remove_reader(conn.fileno())
        for transport in list(hole_transports):
            transport.close()
        answering.close()
        blackhole.close()


def _port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


class ReceiverProcess:
    """The parent's handle on the receiver process; calls are serialised over one pipe."""

    def __init__(self, lifetime_s: float = 4 * 3600) -> None:
        self._lifetime_s = lifetime_s
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._lock = threading.Lock()
        self.port = 0
        self.blackhole_port = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def blackhole_url(self, path: str = "/dead") -> str:
        return f"http://127.0.0.1:{self.blackhole_port}{path}"

    def start(self, timeout_s: float = 30.0) -> ReceiverProcess:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=run, args=(child, self._lifetime_s), name="bench-receiver", daemon=True)
        process.start()
        child.close()
        self._conn, self._process = parent, process
        try:
            if not parent.poll(timeout_s):
                raise EOFError
            _ready, self.port, self.blackhole_port = parent.recv()
        except (EOFError, OSError):
            self.stop()
            raise RuntimeError("the receiver process did not start") from None
        return self

    def _call(self, command: str | tuple[Any, ...], timeout_s: float = 30.0) -> Any:
        with self._lock:
            if self._conn is None:
                raise RuntimeError("the receiver is not running")
            self._conn.send(command)
            if not self._conn.poll(timeout_s):
                raise RuntimeError(f"the receiver did not answer {command!r} within {timeout_s:g} s")
            return self._conn.recv()

    async def count(self) -> tuple[int, float, dict[str, int]]:
        """(requests answered, epoch time of the last one, answered per tracked path) since the last reset."""
        result: tuple[int, float, dict[str, int]] = await asyncio.to_thread(self._call, "count")
        return result

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await asyncio.to_thread(self._call, "stats")
        return result

    async def reset(self, paths: tuple[str, ...] = (), answer_delay_s: float | None = None) -> None:
        """Zero the figures; requests to `paths` (first segments, like `/b`) are also counted apart; with
        `answer_delay_s`, the per-call check is on and every answer waits that long (see Calls)."""
        if answer_delay_s is not None:
            await asyncio.to_thread(self._call, ("reset", tuple(paths), answer_delay_s))
        else:
            await asyncio.to_thread(self._call, ("reset", tuple(paths)) if paths else "reset")

    def stop(self) -> None:
        conn, process = self._conn, self._process
        if conn is not None:
            try:
                with self._lock:
                    conn.send("stop")
            except OSError:
                pass
            conn.close()
            self._conn = None
        if process is not None:
            process.join(5)
            if process.is_alive():
                process.terminate()
                process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)
            self._process = None
