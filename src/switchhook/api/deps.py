"""Request plumbing shared by every route: the caller, the JSON body (capped), the services."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, Header, Query, Request

from switchhook.domain.errors import PayloadTooLarge, ValidationFailed
from switchhook.services.auth import Caller
from switchhook.services.container import Services


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def read_body(request: Request) -> bytes:
    """The raw body, refused with 413 past the cap before it is all read."""
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
    return b"".join(chunks)


async def json_body(request: Request) -> Any:
    """The body parsed as JSON; malformed JSON is a 400 that says where."""
    raw = await read_body(request)
    if not raw.strip():
        raise ValidationFailed("Bad request: a JSON body is required.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"Bad request: malformed JSON: {exc}") from None


async def current_caller(
    request: Request,
    x_access_token: Annotated[str | None, Header(description="Session or domain token (JWT)")] = None,
    x_key: Annotated[str | None, Header(description="Session key from /login")] = None,
    access_token: Annotated[str | None, Query(description="Token, when a header cannot be set")] = None,
    x_key_query: Annotated[str | None, Query(alias="x_key", description="Session key, as a query parameter")] = None,
) -> Caller:
    token = x_access_token or access_token
    key = x_key or x_key_query
    caller = await services(request).auth.authenticate(token, key)
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]
ServicesDep = Annotated[Services, Depends(services)]
DomainQuery = Annotated[str | None, Query(description="Target domain (root only; domain callers are confined)")]
