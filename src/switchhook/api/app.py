"""The FastAPI application factory: routes, Webitel CORS, one error mapping, a truthful OpenAPI document."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchhook import __version__, console
from switchhook.api import docs, errors, health
from switchhook.api.v2 import auth, catalogue, deliveries, domains, events, hooks, stats
from switchhook.services.container import Services

CORS_METHODS = b"GET,PUT,POST,PATCH,DELETE,OPTIONS"
CORS_HEADERS = b"Content-Type, Accept, X-Access-Token, X-Key"


class WebitelCors:
    """CORS as Webitel: echo Origin (or *), fixed methods and headers, OPTIONS answers 200 with no body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = next((v for k, v in scope["headers"] if k == b"origin"), b"*")
        cors = [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-methods", CORS_METHODS),
            (b"access-control-allow-headers", CORS_HEADERS),
            (b"access-control-max-age", b"86400"),
        ]
        if origin != b"*":
            cors.append((b"vary", b"Origin"))
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 200, "headers": [*cors, (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *cors]
            await send(message)

        await self.app(scope, receive, send_with_cors)


class TrailingSlash:
    """`/api/v2/hooks/` routes as `/api/v2/hooks`, with no 307 redirect: Webitel's Express app routed
    non-strictly (a path matches with or without one trailing slash), and clients wrote URLs both ways."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path[-1] == "/":
                raw: bytes | None = scope.get("raw_path")
                scope = {**scope, "path": path[:-1]}
                if raw and raw.endswith(b"/"):
                    scope["raw_path"] = raw[:-1]
        await self.app(scope, receive, send)


def create_app(services: Services, operations_only: bool = False) -> FastAPI:
    """The whole API, or (worker-only processes) just /health and /metrics."""
    app = FastAPI(
        title="switchhook",
        version=__version__,
        description="Webhooks for FreeSWITCH/Webitel telephony events; a drop-in for Webitel's /api/v2/hooks.",
        docs_url=None,  # docs.install serves /docs with its assets from the package, not from a CDN
        redoc_url=None,
    )
    docs.install(app)
    app.state.services = services
    app.router.redirect_slashes = False  # TrailingSlash strips the one slash Webitel tolerated; no 307s
    if not operations_only:
        for module in (hooks, events, catalogue, deliveries, domains, auth, stats):
            app.include_router(module.router)
        app.include_router(console.router)  # the web console: static files at /console/ (docs/console.md)
    app.include_router(health.router)
    errors.install(app)
    if not operations_only:
        app.add_middleware(events.IngestFastPath, services=services)
    app.add_middleware(WebitelCors)
    app.add_middleware(TrailingSlash)  # outermost: every route, the ingest fast path too, sees the plain path
    _truthful_openapi(app)
    return app


def _truthful_openapi(app: FastAPI) -> None:
    """Our 422s are answered as 400 in the error envelope: say so in the document."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.get("responses", {})
                if "422" in responses:
                    del responses["422"]
                    responses.setdefault("400", errors_schema())
                for code in list(responses):
                    if code == "200" and "202" in responses:
                        del responses["200"]
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def errors_schema() -> dict[str, Any]:
    from switchhook.api.schemas import error_responses

    return error_responses(400)[400]
