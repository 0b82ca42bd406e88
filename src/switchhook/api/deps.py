"""Request plumbing shared by every route: the caller, the JSON body (capped), the services."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, Header, Query, Request

from switchhook.domain.errors import PayloadTooLarge, ValidationFailed
from switchhook.services.access import Caller
from switchhook.services.container import Services


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def read_body(request: Request) -> bytes:
    """The raw body, refused with 413 past the cap before it is all read; read once, kept for later readers."""
    cached: bytes | None = getattr(request.state, "raw_body", None)
    if cached is not None:
        return cached
    cap = services(request).max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise PayloadTooLarge(f"Request body is larger than {cap} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise PayloadTooLarge(f"Request body is larger than {cap} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
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
    the headers (src/adapter/rest/auth/auth.resource.js `validateRequestV2`). A body that is not JSON is
    left for the route to refuse."""
    if request.method in ("GET", "HEAD", "OPTIONS") or "json" not in request.headers.get("content-type", "").lower():
        return None, None
    raw = await read_body(request)
    if b"access_token" not in raw and b"x_key" not in raw:  # the common case: no parse just for this
        return None, None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    token, key = body.get("access_token"), body.get("x_key")
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
