"""`/api/v2/stats/hooks`: what a hook list shows beside the hooks (services/stats.py, docs/console.md).

Not under `/api/v2/hooks/`: there `stats` would be read as a hook id by `GET /api/v2/hooks/{hook_id}`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from switchhook.api import schemas as s
from switchhook.api.deps import CallerDep, DomainQuery, ServicesDep
from switchhook.api.responses import ok

router = APIRouter(prefix="/api/v2/stats", tags=["stats"])

_COUNT = {"type": "integer", "minimum": 0}
HOOK_STATS: dict[str, Any] = {
    "type": "object",
    "required": [
        "hookId",
        "since",
        "delivered",
        "failed",
        "pending",
        "sampled",
        "successRate",
        "lastDelivery",
        "breaker",
        "shelved",
    ],
    "properties": {
        "hookId": {"type": "string", "pattern": "^[0-9a-f]{24}$"},
        "since": {"type": "integer", "description": "start of the window (ms since the epoch): the last hour"},
        "delivered": {**_COUNT, "description": "of the counted deliveries created since `since`: delivered"},
        "failed": {**_COUNT, "description": "failed or expired"},
        "pending": {**_COUNT, "description": "still to be sent or retried"},
        "sampled": {**_COUNT, "description": "deliveries counted: the newest 1,000 of the window at most"},
        "successRate": {
            "type": ["number", "null"],
            "minimum": 0,
            "maximum": 1,
            "description": "delivered / (delivered + failed); null when none finished",
        },
        "lastDelivery": {
            "description": "the hook's newest delivery, of any age",
            "anyOf": [
                {
                    "type": "object",
                    "required": ["id", "status", "lastStatus", "attempts", "createdAt", "updatedAt"],
                    "properties": {
                        "id": {"type": "string"},
                        "status": {"type": "string", "enum": ["pending", "delivered", "failed", "expired"]},
                        "lastStatus": {"type": ["integer", "null"], "description": "HTTP status of its last attempt"},
                        "attempts": _COUNT,
                        "createdAt": {"type": "number"},
                        "updatedAt": {"type": "number"},
                    },
                },
                {"type": "null"},
            ],
        },
        "breaker": {
            "type": ["string", "null"],
            "enum": ["closed", "open", "half-open", None],
            "description": "the circuit of the answering process's worker (open: paused, half-open: probing);"
            " null in a process without a worker (`serve --api`)",
        },
        "shelved": {
            "type": "boolean",
            "description": "deliveries wait in the store for room: the endpoint is paused or the backlog full",
        },
    },
}
HOOK_IDS = "^[0-9a-fA-F]{24}(,[0-9a-fA-F]{24}){0,99}$"


@router.get(
    "/hooks",
    summary="Each hook's last hour: deliveries by outcome, success rate, newest delivery, breaker",
    description=(
        "For the named hooks of the caller's domain (ids of another domain are left out), or its first 100 hooks:"
        " deliveries created in the last hour (the newest 1,000 of each hook at most) by outcome and their success"
        " rate, the newest delivery's status, the answering worker's circuit, and whether deliveries wait on a"
        " shelf."
    ),
    responses={**s.ok(s.envelope({"type": "array", "items": HOOK_STATS})), **s.error_responses(400, 401, 403, 503)},
)
async def hook_stats(
    caller: CallerDep,
    svc: ServicesDep,
    domain: DomainQuery = None,
    hook: Annotated[
        str | None, Query(description="comma-separated hook ids, at most 100", pattern=HOOK_IDS, max_length=2499)
    ] = None,
) -> Response:
    return ok(await svc.stats.hooks(caller, domain, hook))
