"""`/login`, `/logout`, `/api/v2/whoami` (SPEC §4.2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import Response

from switchhook.api import schemas as s
from switchhook.api.deps import CallerDep, ServicesDep, json_body
from switchhook.api.responses import json_response, ok
from switchhook.domain.errors import ValidationFailed

router = APIRouter(tags=["auth"])

LOGIN_INPUT = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
}
SESSION = {
    "type": "object",
    "required": ["key", "token", "username", "role", "expires"],
    "properties": {
        "key": {"type": "string"},
        "token": {"type": "string"},
        "username": {"type": "string"},
        "domain": {"type": ["string", "null"]},
        "role": {"type": "string"},
        "expires": {"type": "integer"},
    },
}
WHOAMI = {
    "type": "object",
    "required": ["id", "roleName"],
    "properties": {
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
    responses={**s.ok(SESSION), **s.error_responses(400, 401, 413, 503)},
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
    svc: ServicesDep,
    x_access_token: Annotated[str | None, Header()] = None,
    x_key: Annotated[str | None, Header()] = None,
    access_token: Annotated[str | None, Query()] = None,
    key_query: Annotated[str | None, Query(alias="x_key")] = None,
) -> Response:
    await svc.auth.logout(x_key or key_query, x_access_token or access_token)
    return json_response({"status": "OK", "info": "Successful logout."})


@router.get(
    "/api/v2/whoami",
    summary="Who the credentials belong to",
    responses={**s.ok(s.envelope(WHOAMI)), **s.error_responses(401, 503)},
)
async def whoami(caller: CallerDep) -> Response:
    return ok(
        {
            "id": caller.id,
            "domain": caller.domain,
            "roleName": caller.role,
            "expires": caller.expires_ms,
            "kind": caller.kind,
        }
    )
