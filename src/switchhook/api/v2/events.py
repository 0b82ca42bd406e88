"""`POST /api/v2/events`: the hot ingest route. JSON, a JSON array, or FreeSWITCH `text/event-plain`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from switchhook.api import schemas as s
from switchhook.api.deps import CallerDep, ServicesDep, read_body
from switchhook.api.responses import ok
from switchhook.domain.errors import InvalidEvent
from switchhook.domain.events import decode_json_events, decode_plain_event
from switchhook.services.auth import require

router = APIRouter(prefix="/api/v2/events", tags=["events"])

ACCEPTED = {
    "type": "object",
    "required": ["accepted", "deliveries"],
    "properties": {
        "accepted": {"type": "integer"},
        "deliveries": {"type": "integer"},
        "dropped": {"type": "integer"},
        "duplicates": {"type": "integer", "description": "events stored before (same Core-UUID and Event-Sequence)"},
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
    responses={202: {"description": "Stored", "content": {"application/json": {"schema": s.envelope(ACCEPTED)}}},
               **s.error_responses(400, 401, 403, 413, 429, 503)},
)  # fmt: skip
async def post_events(request: Request, caller: CallerDep, svc: ServicesDep) -> Response:
    require(caller, "event", "c")
    raw = await read_body(request)
    content_type = request.headers.get("content-type", "").lower()
    if "event-plain" in content_type or content_type.startswith("text/plain"):
        events = [decode_plain_event(raw)]
    else:
        if not raw.strip():
            raise InvalidEvent("Bad request: a JSON event, an array of events or text/event-plain is required.")
        events = decode_json_events(raw)
    result = await svc.events.accept(
        events, source="http", confine_to=caller.domain, strict=True, limiter=svc.ingest_limiter
    )
    data = {"accepted": result.accepted, "deliveries": result.deliveries, "dropped": result.dropped}
    if result.duplicates:
        data["duplicates"] = result.duplicates  # already stored: a FreeSWITCH event posted twice
    return ok(data, 202)
