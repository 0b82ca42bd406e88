"""`/api/v2/deliveries`: one delivery with its attempts, and manual replay."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from switchhook.api import schemas as s
from switchhook.api.deps import CallerDep, DomainQuery, ServicesDep, json_body
from switchhook.api.responses import ok

router = APIRouter(prefix="/api/v2/deliveries", tags=["deliveries"])

_STATUS = {"type": "string", "enum": ["pending", "delivered", "failed", "expired"]}
_TIME_MS = {"type": "integer", "minimum": 0, "maximum": 2**53, "description": "ms since the epoch (creation time)"}
_UNTIL_MS = {**_TIME_MS, "description": "ms since the epoch (creation time), exclusive"}
RECOVER_FILTER: dict[str, Any] = {
    "type": "object",
    "description": "at least one of hook and call; since (inclusive) <= until (exclusive)",
    "additionalProperties": False,
    "anyOf": [{"required": ["hook"]}, {"required": ["call"]}],
    "properties": {
        "hook": {"type": "string", "pattern": "^[0-9a-fA-F]{24}$"},
        "call": {"type": "string", "minLength": 1, "maxLength": 255},
        "status": {"type": "array", "minItems": 1, "items": _STATUS, "default": ["failed", "expired"]},
        "since": _TIME_MS,
        "until": _UNTIL_MS,
    },
}
RECOVER_RESULT: dict[str, Any] = {
    "type": "object",
    "required": ["queued", "inFlight", "beyondCap"],
    "properties": {
        "queued": {"type": "integer", "description": "deliveries made due again"},
        "inFlight": {"type": "integer", "description": "matching deliveries being sent right now: left alone"},
        "beyondCap": {"type": "integer", "description": "matched beyond the per-request cap (10,000): not queued"},
    },
}


@router.post(
    "/recover",
    summary="Re-queue every delivery of a hook or a call (failed and expired by default)",
    description=(
        "Makes every matching delivery of the caller's domain due again, keeping its message id, with a fresh"
        " ttl window. Deliveries being sent right now are skipped (inFlight). At most 10,000 per request, done"
        " in chunks of 500; more are counted in beyondCap and taken by the same request again."
    ),
    openapi_extra=s.json_request(RECOVER_FILTER),
    responses={**s.ok(s.envelope(RECOVER_RESULT)), **s.error_responses(400, 401, 403, 413, 503)},
)
async def recover_deliveries(
    request: Request, caller: CallerDep, svc: ServicesDep, domain: DomainQuery = None
) -> Response:
    return ok(await svc.deliveries.recover(caller, domain, await json_body(request)))


@router.get(
    "",
    summary="The delivery log of the caller's domain: by call, hook, status and creation time",
    description=(
        "Every hook's deliveries of the caller's domain (another domain's call or hook: an empty list). With `call`,"
        " the call's deliveries in event order (Event-Date-Timestamp, then Event-Sequence, then creation);"
        " otherwise newest first. `since` (inclusive) and `until` (exclusive) are creation times in ms since the"
        " epoch."
    ),
    responses={**s.ok(s.envelope({"type": "array", "items": s.DELIVERY})), **s.error_responses(400, 401, 403, 503)},
)
async def list_deliveries(
    caller: CallerDep,
    svc: ServicesDep,
    domain: DomainQuery = None,
    call: Annotated[str | None, Query(description="a call id (X-Call-Id)", min_length=1, max_length=255)] = None,
    hook: Annotated[str | None, Query(description="a hook id", pattern="^[0-9a-fA-F]{24}$")] = None,
    status: Annotated[str | None, Query(description="pending | delivered | failed | expired")] = None,
    since: Annotated[str | None, Query(description="ms since the epoch, inclusive", pattern="^[0-9]{1,16}$")] = None,
    until: Annotated[str | None, Query(description="ms since the epoch, exclusive", pattern="^[0-9]{1,16}$")] = None,
    limit: Annotated[str | None, Query(description="1-1000, default 40", pattern="^[0-9]{1,4}$")] = None,
    page: Annotated[str | None, Query(description="from 1", pattern="^[0-9]{1,10}$")] = None,
) -> Response:
    params = {"call": call, "hook": hook, "status": status, "since": since, "until": until}
    return ok(await svc.deliveries.search(caller, domain, {**params, "limit": limit, "page": page}))


@router.get(
    "/{delivery_id}",
    summary="A delivery with its attempts (null when absent)",
    responses={
        **s.ok(s.envelope({"anyOf": [s.DELIVERY, {"type": "null"}]})),
        **s.error_responses(400, 401, 403, 503),
    },
)
async def get_delivery(delivery_id: str, caller: CallerDep, svc: ServicesDep, domain: DomainQuery = None) -> Response:
    return ok(await svc.deliveries.get(caller, domain, delivery_id))


@router.post(
    "/{delivery_id}/retry",
    summary="Re-queue a delivery now",
    responses={**s.ok(s.envelope(s.UPDATE_RESULT)), **s.error_responses(400, 401, 403, 404, 409, 503)},
)
async def retry_delivery(delivery_id: str, caller: CallerDep, svc: ServicesDep, domain: DomainQuery = None) -> Response:
    return ok(await svc.deliveries.retry(caller, domain, delivery_id))
