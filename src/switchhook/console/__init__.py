"""The web console (docs/console.md): hand-written static files served at `/console/`, and `/` sent there.

No build step and nothing from the internet: the files under `static/` are what the browser runs, read once at
import (a few tens of KB). The console talks to the public API only; these routes serve files and nothing else.
Every response carries a Content-Security-Policy that allows this server alone (no inline script, no other
origin, no framing), so a hook document or an event shown by the console can never run as code.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from starlette.responses import RedirectResponse, Response

#: The policy of every console response: scripts, styles, images and API calls from this origin only; no
#: plugins, no <base> rewriting, no forms posted elsewhere, and no page may frame the console (clickjacking).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate: an upgraded switchhook serves its own console at once
}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def _load() -> dict[str, tuple[bytes, str]]:
    """Every file of static/ by its name (one flat folder): its bytes and content type."""
    files: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files(__package__).joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in CONTENT_TYPES:
            files[entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    return files


ASSETS = _load()
router = APIRouter(include_in_schema=False)


def _asset(name: str) -> Response:
    found = ASSETS.get(name)
    if found is None:
        return Response(b"Not found.", 404, headers=SECURITY_HEADERS, media_type="text/plain")
    body, content_type = found
    return Response(body, headers=SECURITY_HEADERS, media_type=content_type)


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/console/", status_code=302)


@router.get("/console")  # `/console/` too: api/app.py's TrailingSlash strips its slash before routing
async def console() -> Response:
    return _asset("index.html")


@router.get("/console/{name}")
async def console_asset(name: str) -> Response:
    return _asset(name)


@router.get("/console/{path:path}")
async def console_elsewhere(path: str) -> Response:
    # No console file lies below the flat folder: a deeper path is a 404 with the console's headers (its policy
    # and framing ban hold for every answer under /console/), not the API's JSON 404 echoing the path.
    return _asset("")


def weight_bytes() -> int:
    """What the console ships, in bytes (docs/console.md)."""
    return sum(len(body) for body, _ in ASSETS.values())
