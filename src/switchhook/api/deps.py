"""Request plumbing shared by every route: the caller, the JSON body (capped), the services."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import orjson
from fastapi import Depends, Header, Query, Request

from switchhook.core.errors import PayloadTooLarge, ValidationFailed
from switchhook.services.access import Caller
from switchhook.services.container import Services


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


#: Bytes of a body read before its sender is authenticated: a hook document (64 KiB) carrying Webitel's body
#: `access_token`, or a login; never the whole 5 MB an anonymous client can send (RELIABILITY.md, hostile tenants).
UNAUTHENTICATED_MAX_BYTES = 64 * 1024


class ClientDisconnected(ValidationFailed):
    """The body never arrived whole; nobody is left to answer."""


@dataclass
class _Body:
    """What has been received of the request body so far (kept in request.state between readers)."""

    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    complete: bool = False


async def _receive(request: Request, until: int, cap: int) -> _Body:
    """Receive the body until it is complete or more than `until` bytes are held; 413 past `cap`."""
    body: _Body | None = getattr(request.state, "body", None)
    if body is None:
        body = request.state.body = _Body()
    while True:
        if body.size > cap:
            raise PayloadTooLarge(f"Request body is larger than {cap} bytes.")
        if body.complete or body.size > until:
            return body
        message = await request.receive()
        if message["type"] != "http.request":  # the client went away (or took too long) mid-body
            raise ClientDisconnected("Bad request: the client disconnected before sending the whole body.")
        chunk = message.get("body", b"")
        body.size += len(chunk)
        if chunk:
            body.chunks.append(chunk)
        body.complete = not message.get("more_body", False)


async def read_body(request: Request) -> bytes:
    """The raw body, refused with 413 past the cap before it is all read; read once, kept for later readers.
    Before the caller is known (a login) the cap is UNAUTHENTICATED_MAX_BYTES."""
    cached: bytes | None = getattr(request.state, "raw_body", None)
    if cached is not None:
        return cached
    cap = services(request).max_body_bytes
    if getattr(request.state, "caller", None) is None:
        cap = min(cap, UNAUTHENTICATED_MAX_BYTES)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise PayloadTooLarge(f"Request body is larger than {cap} bytes.")
    body = await _receive(request, cap, cap)
    raw = b"".join(body.chunks)
    request.state.raw_body = raw
    return raw


async def json_body(request: Request) -> Any:
    """The body parsed as JSON; malformed JSON is a 400 that says where."""
    raw = await read_body(request)
    if not raw.strip():
        raise ValidationFailed("Bad request: a JSON body is required.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"Bad request: malformed JSON: {exc}") from None


async def body_credentials(request: Request) -> tuple[str | None, str | None]:
    """`access_token` and `x_key` of a JSON object body, which Webitel looked at before the query string and
    the headers (src/adapter/rest/auth/auth.resource.js `validateRequestV2`). Only a body of at most
    UNAUTHENTICATED_MAX_BYTES is looked at: a longer one is not read before its sender is authenticated
    (docs/webitel.md, API edges). A body that is not JSON is left for the route to refuse."""
    if request.method in ("GET", "HEAD", "OPTIONS") or "json" not in request.headers.get("content-type", "").lower():
        return None, None
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > UNAUTHENTICATED_MAX_BYTES:
        return None, None
    body = await _receive(request, UNAUTHENTICATED_MAX_BYTES, services(request).max_body_bytes)
    if not body.complete:
        return None, None
    raw = b"".join(body.chunks)
    if b"access_token" not in raw and b"x_key" not in raw:  # the common case: no parse just for this
        return None, None
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(parsed, dict):
        return None, None
    token, key = parsed.get("access_token"), parsed.get("x_key")
    return (token if isinstance(token, str) else None), (key if isinstance(key, str) else None)


async def credentials(request: Request, *, with_body: bool = True) -> tuple[str | None, str | None]:
    """(token, key), each the first found of body, query, header, as Webitel read them."""
    body_token, body_key = await body_credentials(request) if with_body else (None, None)
    query, headers = request.query_params, request.headers
    token = body_token or query.get("access_token") or headers.get("x-access-token")
    key = body_key or query.get("x_key") or headers.get("x-key")
    return token, key


async def current_caller(
    request: Request,
    x_access_token: Annotated[str | None, Header(description="Session or domain token (JWT)")] = None,
    x_key: Annotated[str | None, Header(description="Session key from /login")] = None,
    access_token: Annotated[str | None, Query(description="Token, when a header cannot be set")] = None,
    x_key_query: Annotated[str | None, Query(alias="x_key", description="Session key, as a query parameter")] = None,
) -> Caller:
    """The caller; the parameters only document where credentials may come from (a JSON body's
    `access_token`/`x_key` too, first, as in Webitel)."""
    token, key = await credentials(request)
    caller = await services(request).auth.authenticate(token, key)
    request.state.caller = caller
    return caller


async def header_caller(
    request: Request,
    x_access_token: Annotated[str | None, Header(description="Session or domain token (JWT)")] = None,
    x_key: Annotated[str | None, Header(description="Session key from /login")] = None,
    access_token: Annotated[str | None, Query(description="Token, when a header cannot be set")] = None,
    x_key_query: Annotated[str | None, Query(alias="x_key", description="Session key, as a query parameter")] = None,
) -> Caller:
    """The caller from the query or headers only: for routes whose body is data (events), not a request."""
    caller = await services(request).auth.authenticate(access_token or x_access_token, x_key_query or x_key)
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]
HeaderCallerDep = Annotated[Caller, Depends(header_caller)]
ServicesDep = Annotated[Services, Depends(services)]
DomainQuery = Annotated[str | None, Query(description="Target domain (root only; domain callers are confined)")]
