"""`switchhook send`: post the event catalogue's real sample of one key, in a domain, to a running switchhook's
`POST /api/v2/events`, as FreeSWITCH would have sent it (docs/catalogue.md)."""

from __future__ import annotations

import difflib
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Final

from switchhook.core.catalogue import for_domain
from switchhook.core.events import Event
from switchhook.services.catalogue import packaged_catalogue

#: How long to wait for switchhook's answer (s).
TIMEOUT_S: Final = 30.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as it is: urllib would follow a 301/302/303 as a GET carrying every header but the
    body's, X-Access-Token included, to whatever host the Location names."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


#: switchhook is reached directly, never through an HTTP proxy named in the environment (urllib's default, even for
#: 127.0.0.1 without `no_proxy`), and never past a redirect: the request carries a token, and must not leave for a
#: proxy or another host.
DIRECT: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


class SendError(Exception):
    """What stops `switchhook send`, said for the person at the terminal."""


def sample_event(key: str, domain: str, domain_headers: Sequence[str]) -> Event:
    """The catalogue's sample of `key`, its domain headers naming `domain` (as the API's catalogue serves it)."""
    entries = {entry.key: entry for entry in packaged_catalogue()}
    entry = entries.get(key)
    if entry is None:
        close = difflib.get_close_matches(key, list(entries), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(close)}?" if close else " `switchhook send --list` lists them."
        raise SendError(f"{key!r} is not in the event catalogue.{hint}")
    if entry.sample is None:
        raise SendError(f"the catalogue has no captured sample of {key} yet (catalogue/SOURCES.md).")
    return for_domain(entry.sample, domain, domain_headers)


def catalogue_keys() -> list[tuple[str, str, bool]]:
    """(key, description, has a sample) of every entry, in the catalogue's order."""
    return [(e.key, e.description, e.sample is not None) for e in packaged_catalogue()]


def post_event(base_url: str, event: Event, token: str, session_key: str | None = None) -> tuple[int, str]:
    """POST the event to `base_url`/api/v2/events; (HTTP status, body text) of the answer."""
    if not base_url.startswith(("http://", "https://")):
        raise SendError(f"--url must be an http:// or https:// URL, got {base_url!r}")
    headers = {"Content-Type": "application/json", "X-Access-Token": token}
    if session_key:
        headers["X-Key"] = session_key
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        base_url.rstrip("/") + "/api/v2/events", data=json.dumps(event).encode(), headers=headers, method="POST"
    )
    try:
        with DIRECT.open(request, timeout=TIMEOUT_S) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:  # a 4xx/5xx answer: show it as it is
        return exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        raise SendError(f"cannot reach switchhook at {base_url}: {getattr(exc, 'reason', exc)}") from None
