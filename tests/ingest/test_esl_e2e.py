"""FreeSWITCH Event Socket to receiver through the whole runtime, against the scripted ESL peer."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.support.app import Harness, make_settings, running
from tests.support.esl_peer import EslPeer, PeerConnection, event_json_frame, event_plain_frame, split_at
from tests.support.fixtures import load_fixture_event, socket_bytes
from tests.support.receiver import Receiver
from tests.support.waiting import eventually

DOMAIN = "demo.webitel.com"
CALLSTATE = "esl-plain-framed-CHANNEL_CALLSTATE-freeswitch-docs.txt"
CALLSTATE_DOMAIN = "sipdomain.de"  # Channel-Presence-ID 8000@sipdomain.de
DIALER_END = "esl-plain-decoded-CUSTOM-engine__dialer_member_end-webitel-docs-en.txt"


def web(url: str, method: str = "POST") -> dict[str, str]:
    return {"type": "web", "method": method, "url": url}


def hook(event: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"event": event, "enable": True, "action": web(url), **extra}


def create_event(unique_id: str, **extra: str) -> dict[str, str]:
    return {"Event-Name": "CHANNEL_CREATE", "Unique-ID": unique_id, "variable_domain_name": DOMAIN, **extra}


async def esl_health(app: Harness) -> tuple[int, str, str]:
    """(HTTP status, overall status, ESL state) from /health."""
    response = await app.client.get("/health")
    report = response.json()
    return response.status_code, report["status"], report["esl"]["state"]


@asynccontextmanager
async def switch_and_engine(tmp_path: Path) -> AsyncIterator[tuple[EslPeer, Harness]]:
    """A scripted FreeSWITCH and switchhook (SQLite) connected to it through SWITCHHOOK_ESL_URL."""
    async with EslPeer() as peer:
        url = f"esl://:ClueCon@127.0.0.1:{peer.port}"
        async with running(make_settings(tmp_path, esl_url=url)) as app:
            await peer.wait_subscribed()
            yield peer, app


async def resubscribed(conn: PeerConnection, command: str) -> None:
    await eventually(lambda: command in conn.commands, f"the peer to receive {command!r}")


async def test_subscribes_to_the_hooked_keys_and_follows_hook_changes(tmp_path: Path) -> None:
    # Hooks stored by an earlier run: the source subscribes to them on its first connection.
    async with running(make_settings(tmp_path)) as app:
        create_id = await app.create_hook(DOMAIN, hook("CHANNEL_CREATE", "http://127.0.0.1:9/create"))
        await app.create_hook(DOMAIN, hook("CUSTOM->engine::dialer_member_end", "http://127.0.0.1:9/dialer"))
        await app.create_hook(DOMAIN, hook("DTMF", "http://127.0.0.1:9/dtmf", enable=False))  # never fires

    async with switch_and_engine(tmp_path) as (peer, app):
        conn = peer.current
        assert conn.commands == ["auth ClueCon", "event json CHANNEL_CREATE CUSTOM engine::dialer_member_end"]
        assert (await esl_health(app)) == (200, "ok", "connected")

        # A hook for a new key: only the difference is subscribed, on the same connection.
        await app.create_hook(CALLSTATE_DOMAIN, hook("CHANNEL_CALLSTATE", "http://127.0.0.1:9/callstate"))
        await resubscribed(conn, "event json CHANNEL_CALLSTATE")
        await app.create_hook(DOMAIN, hook("CUSTOM->callcenter::info", "http://127.0.0.1:9/cc"))
        await resubscribed(conn, "event json CUSTOM callcenter::info")
        # Another hook for a key already subscribed changes nothing.
        await app.create_hook("other.example", hook("CHANNEL_CREATE", "http://127.0.0.1:9/other"))
        # Deleting the only hook of a key unsubscribes it.
        token = await app.domain_token(DOMAIN)
        deleted = await app.client.delete(f"/api/v2/hooks/{create_id}", headers={"X-Access-Token": token})
        assert deleted.status_code == 200, deleted.text
        everything = {
            "CHANNEL_CALLSTATE",
            "CHANNEL_CREATE",
            "CUSTOM",
            "CUSTOM->engine::dialer_member_end",
            "CUSTOM->callcenter::info",
        }
        await eventually(lambda: conn.subscription == everything, "the full subscription")
        assert conn.commands[2:] == ["event json CHANNEL_CALLSTATE", "event json CUSTOM callcenter::info"]
        assert len(peer.connections) == 1  # all of it without reconnecting

        # The one CHANNEL_CREATE hook left is in another domain: still subscribed. Delete it too.
        other_token = await app.domain_token("other.example")
        listed = await app.client.get("/api/v2/hooks", headers={"X-Access-Token": other_token})
        (other,) = listed.json()["data"]
        deleted = await app.client.delete(f"/api/v2/hooks/{other['_id']}", headers={"X-Access-Token": other_token})
        assert deleted.status_code == 200, deleted.text
        await resubscribed(conn, "nixevent CHANNEL_CREATE")
        await eventually(lambda: "CHANNEL_CREATE" not in conn.subscription, "CHANNEL_CREATE to be nixed")
        assert len(peer.connections) == 1


async def test_json_and_plain_frames_split_across_writes_are_delivered(tmp_path: Path, receiver: Receiver) -> None:
    async with switch_and_engine(tmp_path) as (peer, app):
        await app.create_hook(DOMAIN, hook("CHANNEL_CREATE", receiver.url("/create")))
        await app.create_hook(
            CALLSTATE_DOMAIN,
            hook("CHANNEL_CALLSTATE", receiver.url("/callstate"), fields=["Unique-ID", "Channel-Call-State"]),
        )
        template = (
            '{"member": "${name}", "number": "${currentNumber}", "cause": "${endCause}", "dialer": "${dialerName}"}'
        )
        await app.create_hook(
            DOMAIN,
            hook(
                "CUSTOM->engine::dialer_member_end",
                receiver.url("/dialer"),
                customBody=True,
                rawBody=template,
            ),
        )
        conn = peer.current
        await eventually(
            lambda: conn.subscription >= {"CHANNEL_CREATE", "CHANNEL_CALLSTATE", "CUSTOM->engine::dialer_member_end"},
            "the subscription to the three keys",
        )

        quoted = create_event("json-1", **{"Caller-Caller-ID-Name": 'O\'Brien "Bob": 1+1 \u0434\u0437'})
        json_frame = event_json_frame(quoted)
        callstate_frame = socket_bytes(CALLSTATE)  # text/event-plain, captured
        dialer = load_fixture_event(DIALER_END)
        dialer_frame = event_plain_frame({k: str(v) for k, v in dialer.items()})  # URL-encoded values
        second_json = event_json_frame(create_event("json-2"))
        head_end = json_frame.index(b"\n\n") + 1  # between the two newlines ending the frame header
        broken = b"Content-Length: 9\nContent-Type: text/event-json\n\n{not json"  # dropped, counted
        chunks = [
            *split_at(json_frame, 7, head_end, head_end + 1, len(json_frame) - 5),
            broken + callstate_frame[:300],
            callstate_frame[300:] + dialer_frame[:50],  # one write ends a frame and starts the next
            dialer_frame[50:] + second_json,  # and one write holds the rest, then a whole frame
        ]
        await peer.send(*chunks)

        await receiver.wait_for(4)
        created = receiver.on("/create")
        assert [r.json()["data"] for r in created] == [quoted, create_event("json-2")]
        assert all(r.method == "POST" and r.json()["action"] == "CHANNEL_CREATE" for r in created)

        (callstate,) = receiver.on("/callstate")
        assert callstate.json()["data"] == {
            "Unique-ID": "005f03fa-c803-428e-92cb-10534ac780dd",
            "Channel-Call-State": "DOWN",
        }
        assert load_fixture_event(CALLSTATE)["Channel-Presence-ID"] == "8000@sipdomain.de"

        (ended,) = receiver.on("/dialer")
        assert ended.headers["Content-Type"] == "application/json"
        assert json.loads(ended.body) == {
            "member": "Customer 1",
            "number": "+380443322112",
            "cause": "MAX_TRY_COUNT",
            "dialer": "TEST Dialer",
        }

        counters = app.source("esl").counters()
        assert (counters["received"], counters["failed"]) == (4, 1)
        text = (await app.client.get("/metrics")).text
        assert 'switchhook_events_received_total{source="esl"} 4.0' in text
        dropped = re.search(r"^switchhook_events_dropped_total\{(.*)\} (\S+)$", text, re.MULTILINE)
        assert dropped, text
        assert (set(dropped.group(1).split(",")), dropped.group(2)) == (
            {'source="esl"', 'reason="undecodable"'},
            "1.0",
        )


async def test_a_dropped_connection_is_reestablished_and_later_events_delivered(
    tmp_path: Path, receiver: Receiver
) -> None:
    async with switch_and_engine(tmp_path) as (peer, app):
        await app.create_hook(DOMAIN, hook("CHANNEL_CREATE", receiver.url("/create")))
        first = peer.current
        await resubscribed(first, "event json CHANNEL_CREATE")
        await peer.send(event_json_frame(create_event("before-drop")))
        await receiver.wait_for(1)

        # The switch goes away, and for a while refuses us: /health says so.
        peer.rude_rejection = True
        peer.drop()
        await eventually(lambda: _health_is(app, (503, "degraded")), "/health to report the lost event socket")
        assert (await esl_health(app))[2] in ("connecting", "disconnected")
        await eventually(lambda: len(peer.connections) >= 2, "a reconnection attempt")

        # Back: the source reconnects by itself, authenticates and subscribes to the hooked keys again.
        peer.rude_rejection = False
        second = await peer.wait_subscribed(count=2, timeout_s=10)
        assert second is not first
        assert second.commands == ["auth ClueCon", "event json CHANNEL_CREATE"]
        await eventually(lambda: _health_is(app, (200, "ok", "connected")), "/health to report the reconnection")

        await peer.send(event_json_frame(create_event("after-reconnect")))
        await receiver.wait_for(2)
        assert [r.json()["data"]["Unique-ID"] for r in receiver.requests] == [
            "before-drop",
            "after-reconnect",
        ]
        assert app.source("esl").counters()["reconnects"] >= 2


async def _health_is(app: Harness, expected: tuple[Any, ...]) -> bool:
    return (await esl_health(app))[: len(expected)] == expected
