"""`POST /api/v2/events`: the hot ingest route. JSON, a JSON array, or FreeSWITCH `text/event-plain`."""

from __future__ import annotations

from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Request
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from switchhook.api import schemas as s
from switchhook.api.deps import ClientDisconnected, HeaderCallerDep, ServicesDep, read_body
from switchhook.api.errors import error_for
from switchhook.api.responses import ok
from switchhook.core.errors import InvalidEvent, PayloadTooLarge, SwitchhookError
from switchhook.core.events import decode_json_events, decode_plain_event
from switchhook.services.access import Caller, require
from switchhook.services.container import Services
from switchhook.services.limits import RateLimiter

router = APIRouter(prefix="/api/v2/events", tags=["events"])

ACCEPTED = {
    "type": "object",
    "required": ["accepted", "deliveries"],
    "properties": {
        "accepted": {"type": "integer"},
        "deliveries": {"type": "integer"},
        "dropped": {"type": "integer"},
        "duplicates": {
            "type": "integer",
            "description": "events stored before (same Core-UUID and Event-Sequence)",
        },
    },
}
_REQUEST = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": s.EVENT_INPUT},
            "text/event-plain": {"schema": {"type": "string", "description": "URL-encoded `Name: value` lines"}},
        },
    }
}


@router.post(
    "",
    summary="Accept events; 202 once their deliveries are stored",
    status_code=202,
    openapi_extra=_REQUEST,
    responses={
        202: {"description": "Stored", "content": {"application/json": {"schema": s.envelope(ACCEPTED)}}},
        **s.error_responses(400, 401, 403, 413, 429, 503),
    },
)
async def post_events(request: Request, caller: HeaderCallerDep, svc: ServicesDep) -> Response:
    # Normally answered by IngestFastPath below, before FastAPI's routing; this route documents it and
    # serves it when the app runs without that middleware.
    data = await ingest(svc, caller, request.headers.get("content-type", ""), await read_body(request))
    return ok(data, 202)


async def ingest(svc: Services, caller: Caller, content_type: str, raw: bytes) -> dict[str, int]:
    """Decode the body as its content type says and accept the events; what the 202 answer carries."""
    require(caller, "event", "c")
    kind = content_type.lower()
    if "event-plain" in kind or kind.startswith("text/plain"):
        events = [decode_plain_event(raw)]
    else:
        if not raw.strip():
            raise InvalidEvent("Bad request: a JSON event, an array of events or text/event-plain is required.")
        events = decode_json_events(raw, orjson.loads)
    limiter: RateLimiter | None = svc.ingest_limiter
    if caller.domain is not None and limiter is not None:
        # A domain caller's events are all its domain's: every one costs a token, matched or not, before
        # anything else is done with them (a batch over the budget is a 429 and nothing is stored).
        limiter.take(caller.domain, len(events))
        limiter = None
    result = await svc.events.accept(events, source="http", confine_to=caller.domain, strict=True, limiter=limiter)
    data = {"accepted": result.accepted, "deliveries": result.deliveries, "dropped": result.dropped}
    if result.duplicates:
        data["duplicates"] = result.duplicates  # already stored: a FreeSWITCH event posted twice
    return data


class IngestFastPath:
    """`POST /api/v2/events` straight from ASGI: the hot route skips FastAPI's routing and dependency
    machinery (about a tenth of the CPU per delivery in the benchmark). Same auth, same answers."""

    PATH = "/api/v2/events"

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        # The body is events, so credentials come from the query, then the headers (Webitel's order after
        # the body it had no events in: src/adapter/rest/auth/auth.resource.js `validateRequestV2`).
        headers = Headers(scope=scope)
        token, key = headers.get("x-access-token"), headers.get("x-key")
        if scope.get("query_string"):
            query = parse_qs(scope["query_string"].decode("latin-1"))
            token = next(iter(query.get("access_token", [])), None) or token
            key = next(iter(query.get("x_key", [])), None) or key
        try:
            # Authenticated before a byte of the body is read: without a valid credential the answer is a
            # 401 at once and the body is never read (the connection is closed after it, api/connections.py).
            caller = await self.services.auth.authenticate(token, key)
            raw = await read_capped(receive, headers.get("content-length"), self.services.max_body_bytes)
            response = ok(await ingest(self.services, caller, headers.get("content-type", ""), raw), 202)
        except SwitchhookError as exc:
            response = error_for(exc)
        await response(scope, receive, send)


async def read_capped(receive: Receive, declared: str | None, cap: int) -> bytes:
    if declared and declared.isdigit() and int(declared) > cap:
        raise PayloadTooLarge(f"Request body is larger than {cap} bytes.")
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":  # the client went away mid-body: nothing was sent, store nothing
            raise ClientDisconnected("Bad request: the client disconnected before sending the whole body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            raise PayloadTooLarge(f"Request body is larger than {cap} bytes.")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)
