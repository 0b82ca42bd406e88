"""`/login`, `/logout`, `/api/v2/whoami`: sign-in and credentials (services/auth.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import Response

from switchhook.api import schemas as s
from switchhook.api.deps import CallerDep, DomainQuery, ServicesDep, body_credentials, json_body
from switchhook.api.responses import json_response, ok
from switchhook.core.errors import ValidationFailed
from switchhook.services.access import acl_of

router = APIRouter(tags=["auth"])

LOGIN_INPUT = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
}
ACL = {
    "type": "object",
    "description": "resource -> permission letters (c r u d, * for all), as Webitel's acl",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}
SESSION = {
    "type": "object",
    "required": ["key", "token", "username", "role", "roleName", "expires"],
    "properties": {
        "key": {"type": "string"},
        "domain": {"type": ["string", "null"]},
        "username": {"type": "string"},
        "expires": {"type": "integer"},
        "token": {"type": "string"},
        "role": {"type": "integer", "description": "Webitel's number: root 2, admin 1, user 0, any other -1"},
        "roleName": {"type": "string"},
        "acl": ACL,
    },
}
WHOAMI = {
    "type": "object",
    "description": "not wrapped in the {status, data} envelope, as Webitel answered it",
    "required": ["id", "roleName"],
    "properties": {
        "acl": ACL,
        "id": {"type": "string"},
        "domain": {"type": ["string", "null"]},
        "roleName": {"type": "string"},
        "expires": {"type": ["integer", "null"]},
        "kind": {"type": "string"},
    },
}


@router.post(
    "/login",
    summary="Log in as root or user@domain",
    openapi_extra=s.json_request(LOGIN_INPUT),
    responses={**s.ok(SESSION), **s.error_responses(400, 401, 413, 429, 503)},
)
async def login(request: Request, svc: ServicesDep) -> Response:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ValidationFailed("Bad request: body must be a JSON object with username and password.")
    return json_response(await svc.auth.login(body.get("username"), body.get("password")))


@router.post(
    "/logout",
    summary="End the session",
    responses={
        **s.ok({"type": "object", "properties": {"status": {"const": "OK"}, "info": {"type": "string"}}}),
        **s.error_responses(401, 503),
    },
)
async def logout(
    request: Request,
    svc: ServicesDep,
    x_access_token: Annotated[str | None, Header()] = None,
    x_key: Annotated[str | None, Header()] = None,
    access_token: Annotated[str | None, Query()] = None,
    key_query: Annotated[str | None, Query(alias="x_key")] = None,
) -> Response:
    body_token, body_key = await body_credentials(request)  # Webitel's order: body, query, header
    await svc.auth.logout(body_key or key_query or x_key, body_token or access_token or x_access_token)
    return json_response({"status": "OK", "info": "Successful logout."})


@router.get(
    "/api/v2/whoami",
    summary="Who the credentials belong to",
    responses={**s.ok(WHOAMI), **s.error_responses(401, 503)},
)
async def whoami(caller: CallerDep) -> Response:
    # Unwrapped, in Webitel's key order (src/adapter/rest/auth/auth.resource.js `whoami`); `kind` is ours.
    return json_response(
        {
            "acl": acl_of(caller),
            "id": caller.id,
            "domain": caller.domain,
            "roleName": caller.role,
            "expires": caller.expires_ms,
            "kind": caller.kind,
        }
    )


@router.delete(
    "/api/v2/sessions",
    summary="End sessions now: root's (?username=root), a domain's, or one account's (?username=)",
    responses={
        **s.ok(s.envelope({"type": "object", "properties": {"n": {"type": "integer"}, "ok": {"type": "integer"}}})),
        **s.error_responses(400, 401, 403, 503),
    },
)
async def end_sessions(
    caller: CallerDep,
    svc: ServicesDep,
    domain: DomainQuery = None,
    username: Annotated[str | None, Query(description="Only this account's sessions (root: `root`)")] = None,
) -> Response:
    scope = caller.domain or domain  # a domain caller is confined to its own domain
    return ok({"n": await svc.auth.end_sessions(caller, scope, username), "ok": 1})
