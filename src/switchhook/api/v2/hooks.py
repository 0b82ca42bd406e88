"""`/api/v2/hooks`: the five Webitel routes, plus the delivery log and dry run of one hook."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from switchhook.api import schemas as s
from switchhook.api.deps import CallerDep, DomainQuery, ServicesDep, json_body
from switchhook.api.responses import ok

router = APIRouter(prefix="/api/v2/hooks", tags=["hooks"])
AUTH_ERRORS = (400, 401, 403, 503)


@router.get(
    "",
    summary="List the domain's hooks",
    responses={
        **s.ok(s.envelope({"type": "array", "items": s.HOOK_OUTPUT})),
        **s.error_responses(*AUTH_ERRORS),
    },
)
async def list_hooks(
    caller: CallerDep,
    svc: ServicesDep,
    domain: DomainQuery = None,
    limit: Annotated[str | None, Query(description="page size (default 40)")] = None,
    page: Annotated[str | None, Query(description="1-based page")] = None,
    columns: Annotated[str | None, Query(description="comma-separated projection; _id always included")] = None,
) -> Response:
    return ok(await svc.hooks.list(caller, domain, limit, page, columns))


@router.post(
    "",
    summary="Create a hook",
    openapi_extra=s.json_request(s.HOOK_INPUT),
    responses={**s.ok(s.envelope(s.INSERT_RESULT)), **s.error_responses(*AUTH_ERRORS, 413)},
)
async def create_hook(request: Request, caller: CallerDep, svc: ServicesDep, domain: DomainQuery = None) -> Response:
    return ok(await svc.hooks.create(caller, domain, await json_body(request)))


@router.get(
    "/{hook_id}",
    summary="Read one hook (null when absent)",
    responses={**s.ok(s.envelope(s.NULLABLE_HOOK)), **s.error_responses(*AUTH_ERRORS)},
)
async def get_hook(hook_id: str, caller: CallerDep, svc: ServicesDep, domain: DomainQuery = None) -> Response:
    return ok(await svc.hooks.get(caller, domain, hook_id))


@router.put(
    "/{hook_id}",
    summary="Replace a hook (omitted fields become absent)",
    openapi_extra=s.json_request(s.HOOK_INPUT),
    responses={**s.ok(s.envelope(s.UPDATE_RESULT)), **s.error_responses(*AUTH_ERRORS, 413)},
)
async def replace_hook(
    hook_id: str, request: Request, caller: CallerDep, svc: ServicesDep, domain: DomainQuery = None
) -> Response:
    return ok(await svc.hooks.replace(caller, domain, hook_id, await json_body(request)))


@router.delete(
    "/{hook_id}",
    summary="Delete a hook",
    responses={**s.ok(s.envelope(s.UPDATE_RESULT)), **s.error_responses(*AUTH_ERRORS)},
)
async def delete_hook(hook_id: str, caller: CallerDep, svc: ServicesDep, domain: DomainQuery = None) -> Response:
    return ok(await svc.hooks.delete(caller, domain, hook_id))


@router.get(
    "/{hook_id}/deliveries",
    summary="The hook's delivery log",
    responses={**s.ok(s.envelope({"type": "array", "items": s.DELIVERY})), **s.error_responses(*AUTH_ERRORS)},
)
async def list_deliveries(
    hook_id: str,
    caller: CallerDep,
    svc: ServicesDep,
    domain: DomainQuery = None,
    status: Annotated[str | None, Query(description="pending | delivered | failed | expired")] = None,
    limit: Annotated[str | None, Query()] = None,
    page: Annotated[str | None, Query()] = None,
) -> Response:
    return ok(await svc.deliveries.list_for_hook(caller, domain, hook_id, status, limit, page))


@router.post(
    "/{hook_id}/test",
    summary="Dry run: what this hook would send for an event",
    openapi_extra=s.json_request({"type": "object", "additionalProperties": True}),
    responses={**s.ok(s.envelope(s.ANY_OBJECT)), **s.error_responses(*AUTH_ERRORS, 404, 413)},
)
async def test_hook(
    hook_id: str,
    request: Request,
    caller: CallerDep,
    svc: ServicesDep,
    domain: DomainQuery = None,
    send: Annotated[bool, Query(description="really send it and report the response")] = False,
) -> Response:
    return ok(await svc.deliveries.test(caller, domain, hook_id, await json_body(request), send))
