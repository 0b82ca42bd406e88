"""/docs works without the internet: the page names only same-origin URLs, and switchhook serves each of them."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import urljoin, urlsplit

from tests.support.app import Harness

BASE = "http://switchhook.test"
#: Every URL the page may load: its src/href attributes, and any quoted absolute URL in it (inline script).
URL_ATTRIBUTES = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
QUOTED_URLS = re.compile(r"""["'](https?://[^"']+|//[^"']+)["']""")


async def test_the_docs_page_loads_only_from_switchhook(app: Harness) -> None:
    page = await app.client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")

    html = page.text
    referenced = URL_ATTRIBUTES.findall(html) + QUOTED_URLS.findall(html)
    assert len(referenced) >= 3, html  # the bundle, its CSS, the favicon
    for url in referenced:
        absolute = urljoin(BASE + "/docs", url)
        assert urlsplit(absolute).netloc == urlsplit(BASE).netloc, f"/docs loads {url} from elsewhere"
        served = await app.client.get(urlsplit(absolute).path)
        assert served.status_code == 200, url
        assert len(served.content) > 0, url
    assert '"validatorUrl": null' in html  # Swagger UI would ask validator.swagger.io otherwise
    assert "openapi.json" in html


async def test_the_assets_have_their_types_and_the_document_loads(app: Harness) -> None:
    js = await app.client.get("/docs/assets/swagger-ui-bundle.js")
    css = await app.client.get("/docs/assets/swagger-ui.css")
    document = await app.client.get("/openapi.json")
    redirect = await app.client.get("/docs/oauth2-redirect")

    assert "javascript" in js.headers["content-type"] and "SwaggerUIBundle" in js.text
    assert css.headers["content-type"].startswith("text/css")
    assert document.status_code == 200 and "/api/v2/events/catalogue" in document.json()["paths"]
    assert redirect.status_code == 200
    assert (await app.client.get("/docs/assets/../../pyproject.toml")).status_code == 404


async def test_the_docs_pages_allow_this_server_only_and_no_framing(app: Harness) -> None:
    """The browser itself refuses anything from elsewhere (connect, script, style, image), and no site can frame
    the page (clickjacking its Authorize box); the inline start script runs by its hash, no other inline script."""
    for path in ("/docs", "/docs/oauth2-redirect"):
        response = await app.client.get(path)
        csp = response.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'self'" and directives["connect-src"] == "'self'", path
        assert directives["frame-ancestors"] == "'none'" and "unsafe-inline" not in csp, path
        (script,) = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert directives["script-src"] == f"'self' 'sha256-{digest}'", path
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
