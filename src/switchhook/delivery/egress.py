"""Egress guard (docs/behaviour.md): resolve, check every address, and connect only to checked addresses."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Refused whatever the configuration: link-local (incl. the 169.254.169.254 metadata service),
#: "this host", the metadata addresses clouds publish outside link-local, multicast, and the limited
#: broadcast 255.255.255.255 with the rest of the reserved 240.0.0.0/4 (no one host answers there).
ALWAYS_DENIED: tuple[IpNetwork, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",
        "255.255.255.255/32",
        "240.0.0.0/4",
        "169.254.0.0/16",
        "100.100.100.200/32",
        "192.0.0.192/32",
        "::/128",
        "fe80::/10",
        "fd00:ec2::254/128",
        "ff00::/8",
        "224.0.0.0/4",
    )
)


_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)


class EgressRefused(Exception):
    """The destination resolves to a refused address; a terminal delivery failure."""


def parse_networks(cidrs: Iterable[str]) -> tuple[IpNetwork, ...]:
    """CIDRs from SWITCHHOOK_EGRESS_DENY; a bare address is a /32 or /128."""
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())


class EgressPolicy:
    def __init__(self, denied: Iterable[IpNetwork] = ()) -> None:
        self._denied = ALWAYS_DENIED + tuple(denied)

    def refusal(self, address: str) -> str | None:
        """Why `address` is refused, or None when it may be connected to."""
        try:
            ip: IpAddress = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return f"{address} is not an IP address"
        for candidate in (ip, *_embedded_ipv4(ip)):
            for network in self._denied:
                if candidate.version == network.version and candidate in network:
                    return f"destination {ip} is in refused range {network}"
        return None

    def check_literal(self, host: str) -> None:
        """IP-literal hosts never reach the resolver: check them here.

        Decimal, octal, hex and short IPv4 spellings (`2852039166`, `0251.0376.0251.0376`) are what
        inet_aton would make of them; they are refused whatever they name, never guessed at.
        """
        bare = host.strip("[]").split("%", 1)[0]
        try:
            ipaddress.ip_address(bare)
        except ValueError:
            if _NUMERIC_HOST.match(bare):
                try:
                    meant = socket.inet_ntoa(socket.inet_aton(bare))
                except OSError:
                    return
                why = self.refusal(meant) or "use the canonical dotted form"
                raise EgressRefused(f"non-canonical IP address {host} ({meant}): {why}") from None
            return
        reason = self.refusal(bare)
        if reason:
            raise EgressRefused(reason)


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: IpAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address reaches through mapping or translation: each is checked too.

    ::ffff:a.b.c.d (mapped), 64:ff9b::a.b.c.d (NAT64), 2002:AABB:CCDD:: (6to4), Teredo, and the deprecated
    IPv4-compatible ::a.b.c.d all lead to an IPv4 host such as 169.254.169.254.
    """
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64 or (0 < int(ip) < 2**32 and int(ip) != 1):  # NAT64, or IPv4-compatible (not ::1)
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that drops refused addresses; aiohttp then connects to what we returned (no rebinding)."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve {host}: {exc.strerror}") from None
        results: list[ResolveResult] = []
        reasons = []
        for fam, _type, proto, _canon, sockaddr in infos:
            address = str(sockaddr[0])
            reason = self._policy.refusal(address)
            if reason:
                reasons.append(reason)
                continue
            results.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=int(sockaddr[1]),
                    family=fam,
                    proto=proto,
                    flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                )
            )
        if not results:
            raise EgressRefused(f"{host}: " + ("; ".join(sorted(set(reasons))) or "no address"))
        return results

    async def close(self) -> None:
        return None


def refused_reason(exc: BaseException) -> str | None:
    """Find an EgressRefused behind aiohttp's connection error wrappers."""
    seen: set[int] = set()
    current: Any = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, EgressRefused):
            return str(current)
        seen.add(id(current))
        current = current.__cause__ or current.__context__ or getattr(current, "os_error", None)
    return None
