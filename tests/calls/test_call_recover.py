"""Bulk recovery through HTTP with a real receiver: `POST /api/v2/deliveries/recover` (issue 14, item 5)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from switchhook.services import deliveries as deliveries_service
from switchhook.services.deliveries import call_chunks
from switchhook.store.base import DeliveryRow
from tests.support.app import ROOT, Harness
from tests.support.receiver import Receiver, Reply
from tests.support.waiting import eventually

A, B = "recover-a.example.com", "recover-b.example.com"


def channel(name: str, call: str, domain: str = A, sequence: int = 1) -> dict[str, str]:
    return {
        "Event-Name": name,
        "variable_domain_name": domain,
        "Channel-Call-UUID": call,
        "Event-Sequence": str(sequence),
    }


async def failing_hook(app: Harness, receiver: Receiver, path: str, domain: str = A, **extra: Any) -> str:
    """A hook on CHANNEL_CREATE that gives up after its first attempt; its endpoint answers 500 until told."""
    receiver.routes[path] = Reply(500)
    doc = {
        "event": "CHANNEL_CREATE",
        "enable": True,
        "retries": 0,
        "action": {"type": "web", "method": "POST", "url": receiver.url(path)},
    }
    return await app.create_hook(domain, {**doc, **extra})


async def statuses(app: Harness, hook_id: str, domain: str = A) -> list[str]:
    rows = await app.services.deliveries.list_for_hook(ROOT, domain, hook_id, None, "1000", None)
    return sorted(r["status"] for r in rows)


async def settled(app: Harness, hook_id: str, count: int, status: str, domain: str = A) -> None:
    await eventually(
        lambda: _all(app, hook_id, count, status, domain),
        f"{count} deliveries of {hook_id} {status}",
        details=lambda: "",
    )


async def _all(app: Harness, hook_id: str, count: int, status: str, domain: str) -> bool:
    return await statuses(app, hook_id, domain) == [status] * count


async def _is(app: Harness, hook_id: str, expected: list[str]) -> bool:
    return await statuses(app, hook_id) == expected


async def recover(app: Harness, body: Any, domain: str = A, token: str | None = None) -> tuple[int, Any]:
    token = token or await app.domain_token(domain)
    response = await app.client.post(
        "/api/v2/deliveries/recover", params={"domain": domain}, json=body, headers={"X-Access-Token": token}
    )
    return response.status_code, response.json()


def ok(queued: int, in_flight: int = 0, beyond: int = 0) -> tuple[int, Any]:
    return 200, {"status": "OK", "data": {"queued": queued, "inFlight": in_flight, "beyondCap": beyond}}


async def test_recover_by_hook_sends_its_failed_deliveries_again_with_their_message_ids(
    any_app: Harness, receiver: Receiver
) -> None:
    app = any_app
    hook = await failing_hook(app, receiver, "/h")
    other = await failing_hook(app, receiver, "/other")
    token = await app.domain_token(A)
    await app.post_events([channel("CHANNEL_CREATE", f"call-{n}") for n in range(3)], token)
    await settled(app, hook, 3, "failed")
    await settled(app, other, 3, "failed")
    first_ids = sorted(r.json()["id"] for r in receiver.on("/h"))
    receiver.routes["/h"] = Reply(200)

    assert await recover(app, {"hook": hook}) == ok(3)

    await settled(app, hook, 3, "delivered")
    assert sorted(r.json()["id"] for r in receiver.on("/h")[3:]) == first_ids  # the same messages
    assert await statuses(app, other) == ["failed"] * 3  # another hook's: untouched
    assert await recover(app, {"hook": hook}) == ok(0)  # none failed any more
    assert await recover(app, {"hook": hook, "status": ["delivered"]}) == ok(3)  # a replay of delivered ones
    await eventually(lambda: len(receiver.on("/h")) == 9, "the delivered ones sent once more")


async def test_recover_by_call_takes_the_calls_deliveries_across_hooks_and_nothing_else(
    app: Harness, receiver: Receiver
) -> None:
    first = await failing_hook(app, receiver, "/one")
    second = await failing_hook(app, receiver, "/two")
    token = await app.domain_token(A)
    await app.post_events([channel("CHANNEL_CREATE", "call-x"), channel("CHANNEL_CREATE", "call-y")], token)
    await settled(app, first, 2, "failed")
    await settled(app, second, 2, "failed")
    receiver.routes["/one"] = receiver.routes["/two"] = Reply(200)

    assert await recover(app, {"call": "call-x"}) == ok(2)

    await eventually(lambda: len(receiver.requests) == 6, "call-x's two deliveries sent again")
    again = [r for r in receiver.requests[4:]]
    assert sorted(r.path for r in again) == ["/one", "/two"]
    assert {r.headers["X-Call-Id"] for r in again} == {"call-x"}
    await eventually(lambda: _is(app, first, ["delivered", "failed"]), "call-x's delivery of the first hook delivered")
    assert await recover(app, {"call": "call-x", "hook": second}) == ok(0)  # done already
    assert await recover(app, {"call": "call-y", "hook": second}) == ok(1)  # both must hold


async def test_recover_takes_only_deliveries_created_in_the_window(app: Harness, receiver: Receiver) -> None:
    hook = await failing_hook(app, receiver, "/h")
    token = await app.domain_token(A)
    await app.post_events(channel("CHANNEL_CREATE", "call-w"), token)
    await settled(app, hook, 1, "failed")
    (row,) = await app.services.deliveries.list_for_hook(ROOT, A, hook, None, None, None)
    created_ms = int(row["createdAt"] * 1000)

    assert await recover(app, {"hook": hook, "since": 0, "until": 1}) == ok(0)  # an empty window
    assert await recover(app, {"hook": hook, "since": created_ms + 1000}) == ok(0)
    assert await recover(app, {"hook": hook, "until": created_ms - 1000}) == ok(0)
    assert await statuses(app, hook) == ["failed"]
    assert await recover(app, {"hook": hook, "since": created_ms - 1000, "until": created_ms + 1000}) == ok(1)


BAD_FILTERS = [
    ([], "the recover body must be a JSON object"),
    ("hook", "the recover body must be a JSON object"),
    ({}, "recover needs a hook or a call"),
    ({"status": ["failed"]}, "recover needs a hook or a call"),
    ({"hook": None, "call": None}, "recover needs a hook or a call"),
    ({"hook": "nothex"}, "hook id must be 24 hex characters"),
    ({"hook": 12}, "hook must be a string"),
    ({"call": ""}, "call must be a string of 1 to 255 characters"),
    ({"call": "x" * 256}, "call must be a string of 1 to 255 characters"),
    ({"call": ["c"]}, "call must be a string of 1 to 255 characters"),
    ({"call": "c", "status": ["failed", "lost"]}, "status must be a non-empty list"),
    ({"call": "c", "status": []}, "status must be a non-empty list"),
    ({"call": "c", "status": "failed"}, "status must be a non-empty list"),
    ({"call": "c", "since": "yesterday"}, "since must be milliseconds since the epoch"),
    ({"call": "c", "since": -1}, "since must be milliseconds since the epoch"),
    ({"call": "c", "until": 1.5}, "until must be milliseconds since the epoch"),
    ({"call": "c", "until": True}, "until must be milliseconds since the epoch"),
    ({"call": "c", "until": 2**60}, "until must be milliseconds since the epoch"),
    ({"call": "c", "since": 2000, "until": 1000}, "since is after until"),
    ({"call": "c", "domain": A}, "unknown recover field 'domain'"),
]


@pytest.mark.parametrize(("body", "says"), BAD_FILTERS)
async def test_a_bad_filter_is_a_400_that_says_why(app: Harness, body: Any, says: str) -> None:
    status, answer = await recover(app, body)

    assert status == 400
    assert answer["status"] == "error"
    assert says in answer["info"]


async def test_a_body_that_is_not_json_is_a_400(app: Harness) -> None:
    token = await app.domain_token(A)
    response = await app.client.post(
        "/api/v2/deliveries/recover", params={"domain": A}, content=b"{", headers={"X-Access-Token": token}
    )
    assert response.status_code == 400


async def test_another_domains_hook_or_call_queues_nothing(app: Harness, receiver: Receiver) -> None:
    hook_b = await failing_hook(app, receiver, "/b", domain=B)
    await app.post_events(channel("CHANNEL_CREATE", "call-b", domain=B), await app.domain_token(B))
    await settled(app, hook_b, 1, "failed", domain=B)
    receiver.routes["/b"] = Reply(200)
    token_a = await app.domain_token(A)

    for body in ({"hook": hook_b}, {"call": "call-b"}, {"hook": hook_b, "call": "call-b", "status": ["failed"]}):
        assert await recover(app, body, A, token_a) == ok(0), body
        # A domain token names its own domain whatever ?domain= says.
        assert await recover(app, body, B, token_a) == ok(0), body
    assert await statuses(app, hook_b, B) == ["failed"]
    assert len(receiver.on("/b")) == 1


async def test_a_delivery_in_flight_is_skipped_and_counted(app: Harness, receiver: Receiver) -> None:
    gate = asyncio.Event()
    receiver.routes["/slow"] = Reply(200, gate=gate)
    hook = await app.create_hook(
        A,
        {
            "event": "CHANNEL_CREATE",
            "enable": True,
            "action": {"type": "web", "method": "POST", "url": receiver.url("/slow")},
        },
    )
    await app.post_events(channel("CHANNEL_CREATE", "call-f"), await app.domain_token(A))
    await receiver.wait_for(1, path="/slow")  # being sent right now

    assert await recover(app, {"hook": hook, "status": ["pending", "failed"]}) == ok(0, in_flight=1)

    gate.set()
    await settled(app, hook, 1, "delivered")
    (row,) = await app.services.deliveries.list_for_hook(ROOT, A, hook, None, None, None)
    assert row["attempts"] == 1
    assert len(receiver.on("/slow")) == 1


async def test_a_large_recovery_stops_at_the_cap_and_says_how_many_are_left(
    app: Harness, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deliveries_service, "RECOVER_CHUNK", 2)
    monkeypatch.setattr(deliveries_service, "RECOVER_CAP", 3)
    hook = await failing_hook(app, receiver, "/h")
    await app.post_events([channel("CHANNEL_CREATE", f"call-{n}") for n in range(4)], await app.domain_token(A))
    await settled(app, hook, 4, "failed")  # four: a fifth failure in a row would pause the endpoint (breaker)
    receiver.routes["/h"] = Reply(200)

    assert await recover(app, {"hook": hook}) == ok(3, beyond=1)  # in chunks of 2
    assert await recover(app, {"hook": hook}) == ok(1)  # the same request again takes the rest
    await settled(app, hook, 4, "delivered")


def row(n: int, call: str | None) -> DeliveryRow:
    return DeliveryRow(f"d{n}", "e", "h", A, "failed", 1, 0.0, None, 500, None, float(n), float(n), call)


def test_chunks_never_part_a_calls_deliveries() -> None:
    rows = [row(0, "x"), row(1, "y"), row(2, None), row(3, "x"), row(4, "z"), row(5, "y"), row(6, None)]

    chunks = call_chunks(rows, 3)

    assert chunks == [["d0", "d3"], ["d1", "d5", "d4"], ["d2", "d6"]]
    for call in ("x", "y", "z"):
        ids = {r.id for r in rows if r.call_id == call}
        assert sum(1 for chunk in chunks if ids & set(chunk)) == 1, call
    assert call_chunks([], 3) == []
    big = [row(n, "long") for n in range(5)]  # a call longer than a chunk is one chunk of its own
    assert call_chunks([row(9, None), *big, row(10, None)], 3) == [[r.id for r in big], ["d9", "d10"]]
