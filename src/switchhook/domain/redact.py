"""Secrets in hook documents: what reads show instead, and putting them back when a read is sent back."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "********"
_SENSITIVE_NAME = re.compile(r"auth|token|secret|passw|api[-_]?key|cookie|session|signature|credential", re.I)


def _sensitive_header(name: str, value: Any) -> bool:
    # A pure template (`Bearer ${auth:body:token}`) names a value, it is not one.
    return isinstance(value, str) and "${" not in value and bool(_SENSITIVE_NAME.search(name))


def _mask_url(url: Any) -> Any:
    if not isinstance(url, str):
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":" + MASK + "@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy safe to show: credential-like header values, auth parameters and URL passwords masked."""
    out = dict(doc)
    action = out.get("action")
    if isinstance(action, Mapping):
        out["action"] = {**action, "url": _mask_url(action.get("url"))}
    headers = out.get("headers")
    if isinstance(headers, Mapping):
        out["headers"] = {k: MASK if _sensitive_header(k, v) else v for k, v in headers.items()}
    auth = out.get("auth")
    if isinstance(auth, Mapping):
        masked = dict(auth)
        if "url" in masked:
            masked["url"] = _mask_url(masked["url"])
        for key in ("headers", "map"):
            values = masked.get(key)
            if isinstance(values, Mapping):
                masked[key] = {k: MASK if isinstance(v, str) and v and "${" not in v else v for k, v in values.items()}
        out["auth"] = masked
    return out


def restore(doc: dict[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """Where a replacement still carries the mask, keep the stored value (GET-then-PUT round trips)."""
    if not previous:
        return doc
    out = dict(doc)
    for key in ("headers",):
        out[key] = _restore_map(out.get(key), previous.get(key))
    if isinstance(out.get("action"), Mapping) and isinstance(previous.get("action"), Mapping):
        out["action"] = {
            **out["action"],
            "url": _restore_url(out["action"].get("url"), previous["action"].get("url")),
        }
    if isinstance(out.get("auth"), Mapping) and isinstance(previous.get("auth"), Mapping):
        auth, before = dict(out["auth"]), previous["auth"]
        for key in ("headers", "map"):
            if key in auth:
                auth[key] = _restore_map(auth.get(key), before.get(key))
        if "url" in auth:
            auth["url"] = _restore_url(auth.get("url"), before.get("url"))
        out["auth"] = auth
    return {k: v for k, v in out.items() if v is not None or k in doc}


def _restore_map(current: Any, before: Any) -> Any:
    if not isinstance(current, Mapping) or not isinstance(before, Mapping):
        return current
    return {k: before.get(k, v) if v == MASK else v for k, v in current.items()}


def _restore_url(current: Any, before: Any) -> Any:
    masked = isinstance(current, str) and ":" + MASK + "@" in current
    if masked and isinstance(before, str) and _mask_url(before) == current:
        return before
    return current
