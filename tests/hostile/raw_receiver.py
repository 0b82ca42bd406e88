"""An HTTP/1.1 receiver on raw asyncio streams that records which TCP connection carried each request.

It frames requests the way a strict origin server does (Transfer-Encoding: chunked wins over Content-Length,
RFC 9112 §6.3), so a request that sends both, with a body crafted as chunks, ends early and the rest of its
bytes are read as the next request on that connection: the desynchronisation a smuggling attack needs.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field


@dataclass
class RawRequest:
    connection: int
    method: str
    path: str
    headers: dict[str, str]  # lower-case names; a repeated name keeps the values joined with ", "
    body: bytes


@dataclass
class RawReceiver:
    requests: list[RawRequest] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def url(self, path: str) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}{path}"

    def on(self, path: str) -> list[RawRequest]:
        return [r for r in self.requests if r.path == path]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = next(self._ids)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, path, _version = request_line.split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        key = name.strip().lower()
                        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    body = await _read_chunked(reader)
                else:
                    body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                self.requests.append(RawRequest(connection, method, path, headers, body))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
