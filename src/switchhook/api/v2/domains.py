"""Domains, their tokens and their accounts (services/domains.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from switchhook.api import schemas as s
from switchhook.api.deps import CallerDep, DomainQuery, ServicesDep, json_body
from switchhook.api.responses import json_response, ok
from switchhook.services.access import effective_domain

router = APIRouter(prefix="/api/v2", tags=["domains"])

NAME_INPUT = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1}},
}
TOKEN_INPUT = {
    "type": "object",
    "required": ["expire", "role"],
    "properties": {
        "expire": {"type": "integer", "description": "ms since epoch"},
        "role": {"enum": ["admin", "user"]},
    },
}
TOKEN = {
    "type": "object",
    "properties": {
        "uuid": {"type": "string"},
        "domain": {"type": "string"},
        "roleName": {"type": "string"},
        "expire": {"type": "integer"},
        "enabled": {"type": "boolean"},
        "createdBy": {"type": "string"},
        "createdOn": {"type": "integer"},
    },
}
ACCOUNT_INPUT = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {
        "username": {"type": "string"},
        "password": {"type": "string", "minLength": 8},
        "role": {"enum": ["admin", "user"]},
    },
}
ACCOUNT_CHANGE = {
    "type": "object",
    "minProperties": 1,
    "properties": {"password": {"type": "string", "minLength": 8}, "role": {"enum": ["admin", "user"]}},
}
ACCOUNT = {
    "type": "object",
    "properties": {"username": {"type": "string"}, "domain": {"type": "string"}, "role": {"type": "string"}},
}
ACCOUNT_CHANGED = {
    "type": "object",
    "properties": {
        "username": {"type": "string"},
        "domain": {"type": "string"},
        "role": {"type": "string"},
        "sessionsEnded": {"type": "integer", "description": "sessions the new password ended"},
    },
}
COUNT = {"type": "object", "properties": {"n": {"type": "integer"}, "ok": {"type": "integer"}}}


@router.post(
    "/domains",
    summary="Create a domain (root)",
    openapi_extra=s.json_request(NAME_INPUT),
    responses={**s.ok(s.envelope({"type": "object"})), **s.error_responses(400, 401, 403, 409, 413, 503)},
)
async def create_domain(request: Request, caller: CallerDep, svc: ServicesDep) -> Response:
    return ok(await svc.domains.create_domain(caller, await json_body(request)))


@router.get(
    "/domains",
    summary="List domains",
    responses={
        **s.ok(s.envelope({"type": "array", "items": {"type": "object"}})),
        **s.error_responses(401, 503),
    },
)
async def list_domains(caller: CallerDep, svc: ServicesDep) -> Response:
    return ok(await svc.domains.list_domains(caller))


@router.delete(
    "/domains/{name}",
    summary="Delete a domain and everything in it (root)",
    responses={**s.ok(s.envelope(COUNT)), **s.error_responses(401, 403, 503)},
)
async def delete_domain(name: str, caller: CallerDep, svc: ServicesDep) -> Response:
    removed = await svc.domains.delete_domain(caller, name)
    svc.hooks.forget_domain(name)  # its hooks were deleted with it
    return ok({"n": removed, "ok": 1})


@router.post(
    "/domains/{name}/settings/token",
    summary="Mint a domain token",
    openapi_extra=s.json_request(TOKEN_INPUT),
    responses={
        **s.ok(
            {
                "type": "object",
                "properties": {
                    "status": {"const": "OK"},
                    "info": {"type": "object", "properties": {"data": TOKEN, "token": {"type": "string"}}},
                },
            }
        ),
        **s.error_responses(400, 401, 403, 404, 413, 503),
    },
)
async def create_token(name: str, request: Request, caller: CallerDep, svc: ServicesDep) -> Response:
    info = await svc.domains.create_domain_token(caller, name, await json_body(request))
    return json_response({"status": "OK", "info": info})


@router.get(
    "/domains/{name}/settings/token",
    summary="List a domain's tokens",
    responses={**s.ok(s.envelope({"type": "array", "items": TOKEN})), **s.error_responses(401, 403, 503)},
)
async def list_tokens(name: str, caller: CallerDep, svc: ServicesDep) -> Response:
    return ok(await svc.domains.list_domain_tokens(caller, name))


@router.delete(
    "/domains/{name}/settings/token/{token_id}",
    summary="Revoke a domain token",
    responses={**s.ok(s.envelope(COUNT)), **s.error_responses(401, 403, 503)},
)
async def revoke_token(name: str, token_id: str, caller: CallerDep, svc: ServicesDep) -> Response:
    return ok({"n": await svc.domains.revoke_domain_token(caller, name, token_id), "ok": 1})


@router.patch(
    "/domains/{name}/settings/token/{token_id}",
    summary="Enable or disable a domain token",
    openapi_extra=s.json_request(
        {"type": "object", "required": ["state"], "properties": {"state": {"type": "boolean"}}}
    ),
    responses={**s.ok(s.envelope(COUNT)), **s.error_responses(400, 401, 403, 413, 503)},
)
async def set_token_state(name: str, token_id: str, request: Request, caller: CallerDep, svc: ServicesDep) -> Response:
    changed = await svc.domains.set_domain_token_state(caller, name, token_id, await json_body(request))
    return ok({"n": changed, "ok": 1})


@router.post(
    "/accounts",
    summary="Add a domain account",
    openapi_extra=s.json_request(ACCOUNT_INPUT),
    responses={**s.ok(s.envelope(ACCOUNT)), **s.error_responses(400, 401, 403, 404, 409, 413, 429, 503)},
)
async def add_account(request: Request, caller: CallerDep, svc: ServicesDep, domain: DomainQuery = None) -> Response:
    scope = effective_domain(caller, domain)
    return ok(await svc.domains.add_account(caller, scope, await json_body(request)))


@router.get(
    "/accounts",
    summary="List a domain's accounts",
    responses={
        **s.ok(s.envelope({"type": "array", "items": ACCOUNT})),
        **s.error_responses(400, 401, 403, 503),
    },
)
async def list_accounts(caller: CallerDep, svc: ServicesDep, domain: DomainQuery = None) -> Response:
    return ok(await svc.domains.list_accounts(caller, effective_domain(caller, domain)))


@router.delete(
    "/accounts/{username}",
    summary="Delete a domain account",
    responses={**s.ok(s.envelope(COUNT)), **s.error_responses(400, 401, 403, 503)},
)
async def delete_account(username: str, caller: CallerDep, svc: ServicesDep, domain: DomainQuery = None) -> Response:
    scope = effective_domain(caller, domain)
    return ok({"n": await svc.domains.delete_account(caller, scope, username), "ok": 1})


@router.patch(
    "/accounts/{username}",
    summary="Change a domain account's password and/or role (a new password ends its sessions)",
    openapi_extra=s.json_request(ACCOUNT_CHANGE),
    responses={
        **s.ok(s.envelope(ACCOUNT_CHANGED)),
        **s.error_responses(400, 401, 403, 404, 413, 429, 503),
    },
)
async def change_account(
    username: str, request: Request, caller: CallerDep, svc: ServicesDep, domain: DomainQuery = None
) -> Response:
    scope = effective_domain(caller, domain)
    return ok(await svc.domains.change_account(caller, scope, username, await json_body(request)))
