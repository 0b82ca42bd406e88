"""The console's static routes over HTTP (docs/console.md, security): every answer under /console/ carries the
console's policy, and no path reaches a file outside its flat folder, however it is spelled."""

from __future__ import annotations

import pytest

from switchhook.console import ASSETS, CSP
from tests.support.app import Harness

#: Paths that must not serve anything: deeper than the folder, traversal plain and percent-encoded (Starlette
#: decodes %2e and %2f before routing), the package's own Python, and a name with a NUL.
NOT_SERVED = [
    "/console/a/b",
    "/console/..%2f..%2fpyproject.toml",
    "/console/%2e%2e",
    "/console/%2e%2e/%2e%2e/pyproject.toml",
    "/console/%2e%2e%2f__init__.py",
    "/console/__init__.py",
    "/console/static",
    "/console/static/app.js",
    "/console/app.js%00.html",
    "/console/%3Cscript%3Ealert(1)%3C%2Fscript%3E/x",
]


def assert_console_headers(response: object, path: str) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    assert headers.get("content-security-policy") == CSP, path
    assert headers.get("x-frame-options") == "DENY", path
    assert headers.get("x-content-type-options") == "nosniff", path


async def test_every_console_file_is_served_with_the_policy(app: Harness) -> None:
    assert {"index.html", "app.js", "style.css"} <= set(ASSETS)
    for name in ASSETS:
        response = await app.client.get(f"/console/{name}")
        assert response.status_code == 200 and response.content == ASSETS[name][0], name
        assert_console_headers(response, name)
    for path in ("/console", "/console/"):
        response = await app.client.get(path)
        assert response.status_code == 200 and response.content == ASSETS["index.html"][0]
        assert_console_headers(response, path)


@pytest.mark.parametrize("path", NOT_SERVED)
async def test_no_path_reaches_outside_the_folder_and_a_404_keeps_the_policy(app: Harness, path: str) -> None:
    response = await app.client.get(path)
    assert response.status_code == 404, (path, response.text[:200])
    assert_console_headers(response, path)
    assert response.headers["content-type"].startswith("text/plain")
    assert "script" not in response.text and ".." not in response.text  # the path is not echoed


async def test_the_root_sends_browsers_to_the_console(app: Harness) -> None:
    response = await app.client.get("/", follow_redirects=False)
    assert response.status_code == 302 and response.headers["location"] == "/console/"
