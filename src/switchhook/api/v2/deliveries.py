"""`/api/v2/deliveries`: one delivery with its attempts, and manual replay."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from switchhook.api import schemas as s
from switchhook.api.deps import CallerDep, DomainQuery, ServicesDep
from switchhook.api.responses import ok

router = APIRouter(prefix="/api/v2/deliveries", tags=["deliveries"])


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
