"""`/docs`, the OpenAPI page, with every asset served by switchhook itself: telephony servers often have no route to
the internet, and FastAPI's page loads Swagger UI from a CDN (a blank page without it; issue 15)."""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import re
from typing import Final

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

#: Where the assets are served. They come from the `fastapi-offline` package (pinned in pyproject.toml; MIT, its
#: Swagger UI files Apache-2.0), which ships Swagger UI's bundle, CSS and FastAPI's favicon as plain files.
ASSETS_URL: Final = "/docs/assets"
ASSETS_PACKAGE: Final = "fastapi_offline"
SWAGGER_JS: Final = f"{ASSETS_URL}/swagger-ui-bundle.js"
SWAGGER_CSS: Final = f"{ASSETS_URL}/swagger-ui.css"
FAVICON: Final = f"{ASSETS_URL}/favicon.png"
#: `validatorUrl: null`: Swagger UI would otherwise ask validator.swagger.io about the document.
SWAGGER_PARAMETERS: Final = {"validatorUrl": None}
#: The policy of the page, as the console's (switchhook/console): everything from this server only, so the browser
#: itself refuses what would leave it; the page's one inline script (Swagger UI's start) allowed by its hash, no
#: other; `data:` images for the icons in Swagger UI's CSS; no framing (clickjacking), no plugins, no <base>.
CSP_TEMPLATE: Final = (
    "default-src 'self'; script-src 'self' {scripts}; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def with_policy(page: HTMLResponse) -> HTMLResponse:
    """`page` with the CSP above (its inline scripts allowed by hash) and the console's other security headers."""
    body = bytes(page.body).decode()
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in INLINE_SCRIPT.findall(body)
    )
    page.headers["Content-Security-Policy"] = CSP_TEMPLATE.format(scripts=hashes)
    page.headers["X-Frame-Options"] = "DENY"
    page.headers["X-Content-Type-Options"] = "nosniff"
    page.headers["Referrer-Policy"] = "no-referrer"
    return page


def install(app: FastAPI, docs_url: str = "/docs") -> None:
    """Serve the OpenAPI page at `docs_url` (create the app with `docs_url=None`) and its assets from the package."""
    assert app.openapi_url is not None
    openapi_url, redirect_url = app.openapi_url, app.swagger_ui_oauth2_redirect_url
    title = f"{app.title} - Swagger UI"
    assets = importlib.resources.files(ASSETS_PACKAGE).joinpath("static")
    app.mount(ASSETS_URL, StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return with_policy(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=title,
                swagger_js_url=SWAGGER_JS,
                swagger_css_url=SWAGGER_CSS,
                swagger_favicon_url=FAVICON,
                oauth2_redirect_url=redirect_url,
                swagger_ui_parameters=SWAGGER_PARAMETERS,
            )
        )

    if redirect_url:

        @app.get(redirect_url, include_in_schema=False)
        async def swagger_ui_redirect() -> HTMLResponse:
            return with_policy(get_swagger_ui_oauth2_redirect_html())
