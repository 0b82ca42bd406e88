"""The OpenAPI document is true: every served route with its methods, every error declared, no 422 left."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from starlette.routing import BaseRoute

from tests.support.app import Harness

FRAMEWORK_PAGES = {"/openapi.json", "/docs", "/docs/oauth2-redirect"}  # the document itself and its viewer
# The web console's static files, and its 404 for any deeper path (docs/console.md).
CONSOLE_PAGES = {"/", "/console", "/console/{name}", "/console/{path:path}"}
PUBLIC = {("GET", "/health"), ("GET", "/metrics"), ("POST", "/login")}
NO_ACL = {
    ("GET", "/api/v2/whoami"),
    ("GET", "/api/v2/domains"),
    ("POST", "/logout"),
    ("GET", "/api/v2/events/catalogue"),
}  # any valid caller
HTTP_METHODS = {"get", "put", "post", "patch", "delete", "options", "head", "trace"}


def served_routes(routes: Sequence[BaseRoute]) -> Iterator[tuple[str, str, bool]]:
    """(method, path, in schema) of every route the app answers, included routers flattened."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)  # FastAPI's included routers
        if contexts is not None:
            for context in contexts():
                for method in context.methods or ():
                    yield method, context.path, context.include_in_schema
            continue
        for method in getattr(route, "methods", None) or ():
            yield method, getattr(route, "path", ""), bool(getattr(route, "include_in_schema", True))


async def openapi(app: Harness) -> dict[str, Any]:
    response = await app.client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method.upper(), path, operation


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


async def test_every_served_route_is_documented_with_its_methods(app: Harness) -> None:
    document = await openapi(app)
    fastapi_app = app.runtime.app()
    served = {(m, p) for m, p, in_schema in served_routes(fastapi_app.routes) if m != "HEAD" and in_schema}
    hidden = {p for m, p, in_schema in served_routes(fastapi_app.routes) if not in_schema}
    documented = {(method, path) for method, path, _ in operations(document)}

    assert hidden == FRAMEWORK_PAGES | CONSOLE_PAGES
    assert served == documented
    # The routes the README's API overview promises are among them.
    for route in [
        ("GET", "/api/v2/hooks"),
        ("POST", "/api/v2/hooks"),
        ("GET", "/api/v2/hooks/{hook_id}"),
        ("PUT", "/api/v2/hooks/{hook_id}"),
        ("DELETE", "/api/v2/hooks/{hook_id}"),
        ("GET", "/api/v2/hooks/{hook_id}/deliveries"),
        ("POST", "/api/v2/hooks/{hook_id}/test"),
        ("GET", "/api/v2/deliveries"),
        ("GET", "/api/v2/deliveries/{delivery_id}"),
        ("POST", "/api/v2/deliveries/{delivery_id}/retry"),
        ("POST", "/api/v2/deliveries/recover"),
        ("GET", "/api/v2/events/catalogue"),
        ("GET", "/api/v2/stats/hooks"),
        ("POST", "/login"),
        ("POST", "/logout"),
        ("GET", "/api/v2/whoami"),
        ("POST", "/api/v2/domains/{name}/settings/token"),
        ("GET", "/api/v2/domains/{name}/settings/token"),
        ("DELETE", "/api/v2/domains/{name}/settings/token/{token_id}"),
        ("PATCH", "/api/v2/domains/{name}/settings/token/{token_id}"),
        ("POST", "/api/v2/domains"),
        ("GET", "/api/v2/domains"),
        ("DELETE", "/api/v2/domains/{name}"),
        ("POST", "/api/v2/accounts"),
        ("GET", "/api/v2/accounts"),
        ("DELETE", "/api/v2/accounts/{username}"),
        ("PATCH", "/api/v2/accounts/{username}"),
        ("DELETE", "/api/v2/sessions"),
        ("GET", "/health"),
        ("GET", "/metrics"),
    ]:
        assert route in documented, route


async def test_every_documented_operation_is_really_served(app: Harness) -> None:
    document = await openapi(app)

    for method, path, _ in operations(document):
        concrete = re.sub(r"\{[^}]+\}", "0123456789abcdef01234567", path)
        response = await app.client.request(method, concrete)
        assert response.status_code not in (404, 405), (method, path, response.text)
        if (method, path) not in PUBLIC:
            assert response.json() == {"status": "error", "info": "Invalid token"}, (method, path)


async def test_every_operation_declares_its_errors_in_the_envelope(app: Harness) -> None:
    document = await openapi(app)

    for method, path, operation in operations(document):
        where = (method, path)
        responses = operation["responses"]
        success = [code for code in responses if code.startswith("2")]
        assert len(success) == 1, where
        assert "application/json" in responses[success[0]]["content"] or path == "/metrics", where
        declared = {int(code) for code in responses}
        if where not in PUBLIC:
            assert {401, 503} <= declared, where
        if path.startswith("/api/v2/") and where not in NO_ACL:
            assert 403 in declared, where
        if "requestBody" in operation:
            assert {400, 413} <= declared, where
        if "{hook_id}" in path or any(p["name"] == "domain" for p in operation.get("parameters", [])):
            assert 400 in declared, where
        for code in declared - {int(c) for c in success}:
            if path == "/health":
                continue  # its 503 is the health report itself
            schema = resolve(document, responses[str(code)]["content"]["application/json"]["schema"])
            assert schema["required"] == ["status", "info"], (where, code)
            assert schema["properties"]["status"] == {"const": "error"}, (where, code)
            assert schema["properties"]["info"]["type"] == "string", (where, code)


async def test_no_422_is_left_in_the_document(app: Harness) -> None:
    document = await openapi(app)

    for method, path, operation in operations(document):
        assert "422" not in operation["responses"], (method, path)
    schemas = document.get("components", {}).get("schemas", {})
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert "HTTPValidationError" not in json.dumps(document)


async def test_credentials_are_documented_as_header_and_query_parameters(app: Harness) -> None:
    document = await openapi(app)

    for method, path, operation in operations(document):
        if (method, path) in PUBLIC:
            continue
        names = {(p["in"], p["name"].lower()) for p in operation.get("parameters", [])}
        assert {("header", "x-access-token"), ("header", "x-key")} <= names, (method, path)
        assert {("query", "access_token"), ("query", "x_key")} <= names, (method, path)
