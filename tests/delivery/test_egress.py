"""Egress guard (docs/behaviour.md): ranges, host spellings, names resolving to refused addresses, redirects."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from switchhook.delivery.egress import EgressPolicy, EgressRefused, GuardedResolver, parse_networks
from switchhook.delivery.sender import Sender
from tests.support.receiver import Receiver, Reply

LOOPBACK_DENY = parse_networks(["127.0.0.0/8", "::1/128"])


def sender(deny: tuple[Any, ...] = ()) -> Sender:
    return Sender(EgressPolicy(deny), connect_timeout_s=2, max_connections=10, user_agent="test")


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "169.254.1.1",
        "0.0.0.0",
        "fe80::1",
        "::ffff:169.254.169.254",
        "fd00:ec2::254",
        "100.100.100.200",
        "::",
        "224.0.0.1",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:a9fe:a9fe::",  # 6to4
        "::a9fe:a9fe",  # IPv4-compatible
        "255.255.255.255",  # the limited broadcast (issue 13, item 11)
        "::ffff:255.255.255.255",
        "240.0.0.1",  # reserved
    ],
)
def test_always_refused_ranges(address: str) -> None:
    assert EgressPolicy().refusal(address) is not None


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "93.184.216.34", "2606:4700::1"])
def test_other_ranges_pass_unless_listed(address: str) -> None:
    assert EgressPolicy().refusal(address) is None


def test_deny_list_adds_ranges_including_ipv4_mapped_spellings() -> None:
    policy = EgressPolicy(parse_networks(["127.0.0.0/8", "10.0.0.0/8", "::1"]))
    assert policy.refusal("127.0.0.1")
    assert policy.refusal("::ffff:127.0.0.1")
    assert policy.refusal("::1")
    assert policy.refusal("10.9.9.9")
    assert policy.refusal("192.168.1.1") is None


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://2852039166/",  # decimal spelling of 169.254.169.254
        "http://0251.0376.0251.0376/",  # octal spelling
        "http://0xa9.0xfe.0xa9.0xfe/",  # hex spelling
        "http://169.254.43518/",  # short form
        "http://255.255.255.255/",  # broadcast
        "http://4294967295/",  # its decimal spelling
    ],
)
async def test_metadata_spellings_are_refused_before_any_connection(url: str) -> None:
    client = sender()
    try:
        result = await client.send("GET", url, {}, None, 2)
    finally:
        await client.close()
    assert result.status is None
    assert result.terminal is True
    assert result.error is not None and result.error.startswith("egress refused")


async def test_hostname_resolving_to_a_refused_address_is_refused(receiver: Receiver) -> None:
    client = sender(LOOPBACK_DENY)
    try:
        by_name = await client.send("GET", f"http://localhost:{receiver.port}/x", {}, None, 2)
        by_ip = await client.send("GET", f"http://127.0.0.1:{receiver.port}/x", {}, None, 2)
        by_decimal = await client.send("GET", f"http://2130706433:{receiver.port}/x", {}, None, 2)
    finally:
        await client.close()
    for result in (by_name, by_ip, by_decimal):
        assert result.terminal and result.error and "refused" in result.error
    assert receiver.requests == []


async def test_resolver_returns_only_checked_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The addresses aiohttp connects to are the ones we checked: a rebinding answer cannot slip through."""

    async def fake_getaddrinfo(host: str, port: int, **_kwargs: Any) -> list[Any]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
        ]

    import asyncio

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", fake_getaddrinfo)
    resolved = await GuardedResolver(EgressPolicy()).resolve("rebind.example", 80)
    assert [r["host"] for r in resolved] == ["93.184.216.34"]

    async def only_bad(host: str, port: int, **_kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    monkeypatch.setattr(loop, "getaddrinfo", only_bad)
    with pytest.raises(EgressRefused):
        await GuardedResolver(EgressPolicy()).resolve("rebind.example", 80)


async def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.routes["/moved"] = Reply(302, headers={"Location": "/target"})
    client = sender()
    try:
        result = await client.send("POST", receiver.url("/moved"), {}, b"{}", 2)
    finally:
        await client.close()
    assert result.status == 302
    assert [r.path for r in receiver.requests] == ["/moved"]


async def test_a_refused_destination_is_a_terminal_failure_with_its_reason_in_the_log(
    receiver: Receiver, tmp_path: Any
) -> None:
    import asyncio

    from tests.support.app import ROOT, make_settings, running

    async with running(make_settings(tmp_path, egress_deny="127.0.0.0/8,::1/128")) as app:
        token = await app.domain_token("d.example")
        hook_id = await app.create_hook(
            "d.example",
            {
                "event": "CHANNEL_CREATE",
                "enable": True,
                "retries": 5,
                "delay": 0.1,
                "action": {"type": "web", "method": "POST", "url": f"http://localhost:{receiver.port}/x"},
            },
            token,
        )
        await app.post_events({"Event-Name": "CHANNEL_CREATE", "variable_domain_name": "d.example"}, token)
        for _ in range(100):
            rows = await app.services.deliveries.list_for_hook(ROOT, "d.example", hook_id, None, None, None)
            if rows and rows[0]["status"] == "failed":
                break
            await asyncio.sleep(0.05)
        view = await app.services.deliveries.get(ROOT, "d.example", rows[0]["id"])
    assert view["status"] == "failed"
    assert view["attempts"] == 1  # terminal: no retries
    assert "egress refused" in view["attempts_log"][0]["error"]
    assert receiver.requests == []
