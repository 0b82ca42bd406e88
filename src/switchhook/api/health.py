"""`/health` (no auth) and `/metrics` (Prometheus text)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from switchhook.api.deps import ServicesDep
from switchhook.api.responses import json_response

router = APIRouter(tags=["operations"])

STATE = {"enum": ["disconnected", "connecting", "connected"]}
SOURCE = {"type": "object", "properties": {"state": STATE}}
BINDING = {"type": "object", "properties": {"exchange": {"type": "string"}, "key": {"type": "string"}}}
AMQP = {
    "type": "object",
    "properties": {
        "state": STATE,
        # exchange -> the mod_amqp `format_fields` layout its routing keys are read with (docs/freeswitch.md)
        "layouts": {"type": "object", "additionalProperties": {"type": "string"}},
        "bindings": {"type": "array", "items": BINDING},
    },
}
HEALTH = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"enum": ["ok", "degraded"]}, "amqp": AMQP, "esl": SOURCE},
}


@router.get(
    "/health",
    summary="Database, broker and ESL state",
    responses={
        200: {"description": "Healthy", "content": {"application/json": {"schema": HEALTH}}},
        503: {"description": "A dependency is down", "content": {"application/json": {"schema": HEALTH}}},
    },
)
async def health(svc: ServicesDep) -> Response:
    report = await svc.health()
    return json_response(report, 200 if report.get("status") == "ok" else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    responses={
        200: {
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(svc: ServicesDep) -> Response:
    return Response(svc.metrics(), media_type="text/plain; version=0.0.4; charset=utf-8")
