"""Issue 13, item 3: request smuggling across tenants over a shared keep-alive connection.

An attacker's hook set `Transfer-Encoding: chunked`; switchhook also sent a Content-Length and a plain body,
so a `rawBody` crafted as chunks ended the request early and its tail became a request of its own, which then
swallowed the next request on that pooled connection: another tenant's, with its API key and signature.
Now such headers are refused at write time, dropped from a hook stored before, and each domain sends on
its own connections.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from switchhook.store.base import HookRow
from tests.hostile.raw_receiver import RawReceiver
from tests.support.app import Harness, make_settings, running
from tests.support.waiting import eventually

ATTACKER, VICTIM = "attacker.example", "victim.example"
SMUGGLED = (
    "0\r\n\r\n"  # the chunked body ends here for a server that honours Transfer-Encoding...
    "POST /smuggled HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 600\r\n\r\n"
)  # ...and the victim's next request on the connection becomes this one's body


@pytest.fixture
async def raw() -> AsyncIterator[RawReceiver]:
    server = RawReceiver()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def web_hook(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "event": "CUSTOM->smuggle",
        "enable": True,
        "action": {"type": "web", "method": "POST", "url": url},
        **extra,
    }


def event(domain: str, n: int) -> dict[str, str]:
    return {"Event-Name": "CUSTOM", "Event-Subclass": "smuggle", "variable_domain_name": domain, "n": str(n)}


@pytest.mark.parametrize(
    "headers",
    [
        {"Transfer-Encoding": "chunked"},
        {"content-length": "5"},
        {"Connection": "keep-alive, Upgrade"},
        {"Keep-Alive": "timeout=5"},
        {"Upgrade": "h2c"},
        {"TE": "trailers"},
        {"Trailer": "X-Sig"},
        {"Host": "internal.example"},
        {"Proxy-Authorization": "Basic eA=="},
    ],
)
async def test_framing_and_hop_by_hop_headers_are_refused_at_write(app: Harness, headers: dict[str, str]) -> None:
    token = await app.domain_token(ATTACKER)
    (name,) = headers
    for body in (
        web_hook("http://127.0.0.1:9/x", headers=headers),
        web_hook("http://127.0.0.1:9/x", auth={"enabled": True, "url": "http://127.0.0.1:9/a", "headers": headers}),
    ):
        response = await app.client.post("/api/v2/hooks", json=body, headers={"X-Access-Token": token})
        assert response.status_code == 400, response.text
        assert name in response.json()["info"]


async def test_a_stored_smuggling_hook_never_desynchronises_another_domains_requests(
    tmp_path: Path, raw: RawReceiver
) -> None:
    async with running(make_settings(tmp_path)) as app:
        attacker, victim = await app.domain_token(ATTACKER), await app.domain_token(VICTIM)
        victim_hook = web_hook(raw.url("/victim"), headers={"X-Api-Key": "victim-secret"})
        await app.create_hook(VICTIM, victim_hook, victim)
        # Stored by a version that did not refuse them: written straight into the store.
        doc = web_hook(
            raw.url("/attacker"),
            headers={"Transfer-Encoding": "chunked", "Content-Length": str(len(SMUGGLED))},
            customBody=True,
            rawBody=SMUGGLED,
        )
        async with app.runtime.store.transaction() as tx:
            await tx.insert_hook(HookRow("5f0000000000000000000001", ATTACKER, doc), time.time())
        await app.runtime.index.reload(app.runtime.store)

        for n in range(4):  # one at a time: each request may reuse the connection the previous one left idle
            assert (await app.post_events(event(ATTACKER, n), attacker)).status_code == 202
            await eventually(lambda n=n: len(raw.on("/attacker")) > n, "the attacker's request")
            assert (await app.post_events(event(VICTIM, n), victim)).status_code == 202
            await eventually(lambda n=n: len(raw.on("/victim")) > n, "the victim's request", timeout_s=10)

    assert raw.on("/smuggled") == []
    for request in raw.on("/attacker"):
        assert "transfer-encoding" not in request.headers
        assert request.headers["content-length"] == str(len(request.body))
        assert request.body == SMUGGLED.encode()  # sent as an opaque body, framed by its length
    for request in raw.on("/victim"):
        assert request.headers["x-api-key"] == "victim-secret"
    attacker_connections = {r.connection for r in raw.on("/attacker")}
    victim_connections = {r.connection for r in raw.on("/victim")}
    assert attacker_connections.isdisjoint(victim_connections)
    assert len(victim_connections) < 4  # the victim's own requests still reuse its connection
