"""A scripted FreeSWITCH inbound Event Socket peer for tests: the real wire protocol on an ephemeral port.

It speaks as mod_event_socket does: `auth/request` on connect, `command/reply` answers, the subscription
semantics of `event`/`nixevent`/`noevents`, `text/disconnect-notice` before it closes. Tests script what
it sends (raw frame bytes, split at awkward points) and read what it received (`commands`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from tests.support.fixtures import FIXTURES_DIR

DISCONNECT_MESSAGE = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
DISCONNECT_NOTICE = (
    b"Content-Type: text/disconnect-notice\nContent-Length: %d\n\n" % len(DISCONNECT_MESSAGE) + DISCONNECT_MESSAGE
)
REJECTION_MESSAGE = b"Access Denied, go away.\n"
RUDE_REJECTION = (
    b"Content-Type: text/rude-rejection\nContent-Length: %d\n\n" % len(REJECTION_MESSAGE) + REJECTION_MESSAGE
)
# switch_url_encode's SWITCH_URL_UNSAFE set; every other byte goes out as it is.
_URL_UNSAFE = frozenset(b'\r\n #%&+:;<=>?@[\\]^`{|}"')


def fixture_frame(name: str) -> bytes:
    """A `*-framed-*` fixture file's bytes, exactly as captured on a socket."""
    return (FIXTURES_DIR / name).read_bytes()


def reply_frame(text: str) -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()


def url_encode(value: str) -> str:
    """Encode a header value as switch_url_encode does (uppercase %XX, a space is %20 and never '+')."""
    return "".join(
        f"%{byte:02X}" if byte in _URL_UNSAFE or byte < 0x20 or byte > 0x7E else chr(byte) for byte in value.encode()
    )


def event_json_frame(event: Mapping[str, str]) -> bytes:
    """An event framed as FreeSWITCH sends it after `event json` (cJSON_PrintUnformatted)."""
    body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    return b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(body) + body


def event_plain_frame(headers: Mapping[str, str], body: str | None = None) -> bytes:
    """An event framed as FreeSWITCH sends it after `event plain` (switch_event_serialize)."""
    text = "".join(f"{name}: {url_encode(value)}\n" for name, value in headers.items())
    if body is None:
        text += "\n"
    else:
        text += f"Content-Length: {len(body.encode())}\n\n{body}"
    data = text.encode()
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(data) + data


def split_at(data: bytes, *offsets: int) -> list[bytes]:
    """Cut `data` at the given offsets (negative ones count from the end)."""
    cuts = sorted(offset % len(data) if offset < 0 else offset for offset in offsets)
    bounds = [0, *cuts, len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds) if end > start]


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


async def wait_until(predicate: Callable[[], object], timeout_s: float = 3.0, what: str = "condition") -> None:
    """Poll `predicate` every few milliseconds until it is truthy; fail the test after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.005)


@dataclass
class PeerConnection:
    """One client connection as the peer sees it."""

    writer: asyncio.StreamWriter
    opened_at: float
    commands: list[str] = field(default_factory=list)
    authed: bool = False
    listening: bool = False
    event_format: str = "plain"
    names: set[str] = field(default_factory=set)
    subclasses: set[str] = field(default_factory=set)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    subscribed_at: float | None = None  # time.monotonic() of the answer to the first event/noevents command
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one writer at a time, as FreeSWITCH's thread

    @property
    def subscription(self) -> frozenset[str]:
        """The effective subscription in hook-key spelling: `NAME`, `CUSTOM`, `CUSTOM->subclass`."""
        return frozenset(self.names | {f"CUSTOM->{subclass}" for subclass in self.subclasses})

    @property
    def subscribed(self) -> bool:
        """Authenticated and has answered at least one event/noevents command."""
        return self.authed and any(c.startswith(("event ", "noevents")) for c in self.commands)


class EslPeer:
    """The server side of an inbound ESL connection, scripted by the test.

    `rude_rejection` refuses every client as an ACL would; `silent` accepts TCP but never says anything.
    """

    def __init__(self, password: str = "ClueCon", *, rude_rejection: bool = False, silent: bool = False) -> None:
        self.password = password
        self.rude_rejection = rude_rejection
        self.silent = silent
        self.connections: list[PeerConnection] = []
        self._server: asyncio.Server | None = None
        self._port = 0
        self._handlers: set[asyncio.Task[None]] = set()
        self.listening_since: float | None = None  # time.monotonic() when the socket last started listening

    async def __aenter__(self) -> EslPeer:
        await self._listen()
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        self.listening_since = time.monotonic()

    async def go_away(self) -> None:
        """Shut down as FreeSWITCH does: a disconnect-notice to every client, then the port is closed."""
        for conn in self.connections:
            if not conn.closed.is_set():
                async with conn.lock:
                    conn.writer.write(DISCONNECT_NOTICE)
                    with contextlib.suppress(ConnectionError):
                        await conn.writer.drain()
                    conn.writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def come_back(self) -> None:
        """Listen again on the same port (connections are refused in between)."""
        await self._listen()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in self.connections:
            conn.writer.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._port, "use `async with EslPeer()`"
        return self._port

    def url(self, password: str | None = None) -> str:
        return f"esl://:{self.password if password is None else password}@127.0.0.1:{self.port}"

    @property
    def commands(self) -> list[str]:
        """Every command received, over all connections, in order."""
        return [command for conn in self.connections for command in conn.commands]

    @property
    def auth_attempts(self) -> int:
        return sum(1 for command in self.commands if command.startswith("auth "))

    @property
    def current(self) -> PeerConnection:
        assert self.connections, "no client has connected"
        return self.connections[-1]

    async def wait_subscribed(self, count: int = 1, timeout_s: float = 3.0) -> PeerConnection:
        """Wait until `count` connections have authenticated and subscribed; return the last one."""
        await wait_until(
            lambda: sum(conn.subscribed for conn in self.connections) >= count,
            timeout_s,
            f"{count} subscribed ESL connection(s)",
        )
        return self.current

    async def send(self, *chunks: bytes, pause_s: float = 0.003) -> None:
        """Write chunks to the current connection, each flushed (drain + pause) so it travels on its own."""
        conn = self.current
        async with conn.lock:
            for index, chunk in enumerate(chunks):
                conn.writer.write(chunk)
                await conn.writer.drain()
                if pause_s and index < len(chunks) - 1:
                    await asyncio.sleep(pause_s)

    async def disconnect(self) -> None:
        """Say goodbye as FreeSWITCH does (text/disconnect-notice), then close the socket."""
        conn = self.current
        async with conn.lock:
            conn.writer.write(DISCONNECT_NOTICE)
            with contextlib.suppress(ConnectionError):
                await conn.writer.drain()
            conn.writer.close()

    def drop(self) -> None:
        """Lose the current connection abruptly (no notice, RST)."""
        self.current.writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        conn = PeerConnection(writer=writer, opened_at=time.monotonic())
        self.connections.append(conn)
        try:
            if self.silent:
                await reader.read()
                return
            if self.rude_rejection:
                writer.write(RUDE_REJECTION)
                return
            writer.write(b"Content-Type: auth/request\n\n")
            while True:
                try:
                    data = await reader.readuntil(b"\n\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                command = data.decode().strip("\n")
                conn.commands.append(command)
                if not await self._answer(conn, command):
                    return
        finally:
            with contextlib.suppress(ConnectionError):
                writer.close()
                await writer.wait_closed()
            conn.closed.set()
            self._handlers.discard(task)

    async def _answer(self, conn: PeerConnection, command: str) -> bool:
        """Answer one command as mod_event_socket would; False when the connection must end."""
        verb, _, rest = command.partition(" ")
        verb = verb.lower()
        keep_open = True
        if not conn.authed:
            if verb == "auth" and rest == self.password:
                conn.authed = True
                text = "+OK accepted"
            else:
                text = "-ERR invalid"
                keep_open = False
        elif verb == "event":
            text = self._subscribe(conn, rest.split(), add=True)
        elif verb == "nixevent":
            text = self._subscribe(conn, rest.split(), add=False)
        elif verb == "noevents":
            text = "+OK no longer listening for events" if conn.listening else "-ERR not listening for events"
            conn.listening = False
            conn.names.clear()
            conn.subclasses.clear()
        elif verb == "exit":
            text = "+OK bye"
            keep_open = False
        else:
            text = "-ERR command not found"
        async with conn.lock:
            conn.writer.write(reply_frame(text))
            if conn.subscribed_at is None and conn.authed and verb in ("event", "noevents"):
                conn.subscribed_at = time.monotonic()
            if not keep_open:
                conn.writer.write(DISCONNECT_NOTICE)
            with contextlib.suppress(ConnectionError):
                await conn.writer.drain()
        return keep_open

    @staticmethod
    def _subscribe(conn: PeerConnection, tokens: Iterable[str], *, add: bool) -> str:
        tokens = list(tokens)
        if add and tokens and tokens[0].lower() in ("plain", "json", "xml"):
            conn.event_format = tokens.pop(0).lower()
        custom = False
        for token in tokens:
            if custom:
                (conn.subclasses.add if add else conn.subclasses.discard)(token)
            elif token == "CUSTOM":
                custom = True
                if add:
                    conn.names.add(token)
            elif add:
                conn.names.add(token)
            else:
                conn.names.discard(token)
        if not tokens:
            return "-ERR no keywords supplied"
        if add:
            conn.listening = True
            return f"+OK event listener enabled {conn.event_format}"
        return "+OK events nixed"
