"""`GET /api/v2/events/catalogue`: the event keys a hook can subscribe to, with real samples (services/catalogue.py)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from switchhook.api import schemas as s
from switchhook.api.deps import CallerDep, DomainQuery, ServicesDep
from switchhook.api.responses import ok

router = APIRouter(prefix="/api/v2/events", tags=["events"])

CATALOGUE_ENTRY = {
    "type": "object",
    "required": ["key", "description", "fields", "sample", "lastSeen", "known"],
    "properties": {
        "key": {
            "type": "string",
            "description": "the hook `event` key: Event-Name, or Event-Name->Event-Subclass",
            "examples": ["CHANNEL_HANGUP_COMPLETE", "CUSTOM->callcenter::info"],
        },
        "description": {"type": "string", "description": "one line, for an integrator"},
        "fields": {"type": "array", "items": {"type": "string"}, "description": "the sample's most useful headers"},
        "sample": {
            "type": ["object", "null"],
            "additionalProperties": True,
            "description": "a real captured event with its domain headers naming the caller's domain, ready for "
            "`POST /api/v2/hooks/{id}/test` or `POST /api/v2/events`; null when none is shipped (or a live key's "
            "latest event was too large to keep, or the caller may not read the domain's events: a `user` role)",
        },
        "lastSeen": {
            "type": ["integer", "null"],
            "description": "when this server process last accepted an event of this key in the domain (ms since the "
            "epoch); null: not since it started",
        },
        "known": {"type": "boolean", "description": "false: a key seen live that the catalogue does not describe"},
    },
}


@router.get(
    "/catalogue",
    summary="The event keys a hook can subscribe to: description, useful fields, a real sample, last seen",
    responses={
        **s.ok(s.envelope({"type": "array", "items": CATALOGUE_ENTRY})),
        **s.error_responses(400, 401, 503),
    },
)
async def event_catalogue(caller: CallerDep, svc: ServicesDep, domain: DomainQuery = None) -> Response:
    # Any authenticated caller, a `user` token too: the catalogue holds nothing of a domain but its own keys, and a
    # live key's sample (a real event) only for callers who may read the domain's events (services/catalogue.py).
    return ok(svc.catalogue.list(caller, domain))
