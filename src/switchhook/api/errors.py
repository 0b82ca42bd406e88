"""The one mapping from switchhook errors to HTTP statuses and Webitel's error envelope."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from switchhook.api.deps import credentials, services
from switchhook.core.errors import (
    AuthError,
    Conflict,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    SwitchhookError,
    Unavailable,
    ValidationFailed,
)

logger = logging.getLogger("switchhook.api")

STATUS_BY_ERROR: tuple[tuple[type[SwitchhookError], int], ...] = (
    (ValidationFailed, 400),
    (AuthError, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (RateLimited, 429),
    (Unavailable, 503),
)


def error_response(status: int, info: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"status": "error", "info": info})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def status_of(exc: SwitchhookError) -> int:
    return next((status for kind, status in STATUS_BY_ERROR if isinstance(exc, kind)), 500)


def error_for(exc: SwitchhookError) -> Response:
    """The one mapping: status from the error's kind, Webitel's envelope, Retry-After when rate limited."""
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else None
    return error_response(status_of(exc), exc.message, headers)


async def _switchhook_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SwitchhookError)
    return error_for(exc)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p not in ('query', 'path', 'body'))}: {e.get('msg')}"
        for e in exc.errors()
    )
    return error_response(400, f"Bad request: {problems}")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (404, 405) and request.url.path.startswith("/api/v2/"):
        # Webitel authenticated every /api/v2/* request before routing (`api.all('/api/v2/*', ...)` in
        # src/adapter/rest/auth/auth.resource.js): an unknown route without a credential is a 401.
        try:
            token, key = await credentials(request)
            await services(request).auth.authenticate(token, key)
        except SwitchhookError as auth_error:
            return error_for(auth_error)
    if exc.status_code == 404:
        return error_response(404, f"{request.url.path} not found.")
    if exc.status_code == 405:
        return error_response(405, f"Method {request.method} not allowed on {request.url.path}.")
    return error_response(exc.status_code, str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "Internal server error.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(SwitchhookError, _switchhook_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
