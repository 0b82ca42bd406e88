"""Secrets in hook documents: what reads show instead, and putting them back when a read is sent back."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from switchhook.core.errors import InvalidHook

MASK = "********"
_SENSITIVE_NAME = re.compile(r"auth|token|secret|passw|api[-_]?key|cookie|session|signature|credential", re.I)


def _sensitive_header(name: str, value: Any) -> bool:
    # A pure template (`Bearer ${auth:body:token}`) names a value, it is not one.
    return isinstance(value, str) and "${" not in value and bool(_SENSITIVE_NAME.search(name))


def mask_url(url: str) -> str:
    """`url` with its password masked, as hook reads show it."""
    masked: str = _mask_url(url)
    return masked


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
        if "fallbackUrl" in action:
            out["action"]["fallbackUrl"] = _mask_url(action["fallbackUrl"])
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
    # A stored credential is only ever sent back where it was going: moving the destination with a masked
    # value would let someone who cannot read a secret send it to a host of their choosing.
    # Headers go to the fallback URL too (docs/fallback.md): it must stay where it was as well.
    same_action = _origin(_url_of(out.get("action"))) == _origin(_url_of(previous.get("action"))) and _origin(
        _url_of(out.get("action"), "fallbackUrl")
    ) == _origin(_url_of(previous.get("action"), "fallbackUrl"))
    # What the auth pre-request returns (a token, `${auth:body:...}`) goes in the request to both URLs: a moved
    # destination would receive a fresh one made with the stored credentials.
    same_auth = same_action and _origin(_url_of(out.get("auth"))) == _origin(_url_of(previous.get("auth")))
    if "headers" in out:
        out["headers"] = _restore_map(out.get("headers"), previous.get("headers"), same_action, "headers")
    if isinstance(out.get("action"), Mapping) and isinstance(previous.get("action"), Mapping):
        out["action"] = {
            **out["action"],
            "url": _restore_url(out["action"].get("url"), previous["action"].get("url")),
        }
        if "fallbackUrl" in out["action"]:
            out["action"]["fallbackUrl"] = _restore_url(
                out["action"]["fallbackUrl"], previous["action"].get("fallbackUrl")
            )
    if isinstance(out.get("auth"), Mapping) and isinstance(previous.get("auth"), Mapping):
        auth, before = dict(out["auth"]), previous["auth"]
        for key in ("headers", "map"):
            if key in auth:
                auth[key] = _restore_map(auth.get(key), before.get(key), same_auth, f"auth.{key}")
        if "url" in auth:
            auth["url"] = _restore_url(auth.get("url"), before.get("url"))
        out["auth"] = auth
    return {k: v for k, v in out.items() if v is not None or k in doc}


def _restore_map(current: Any, before: Any, allowed: bool, name: str) -> Any:
    if not isinstance(current, Mapping):
        return current
    masked = [k for k, v in current.items() if v == MASK]
    if not masked:
        return current
    if not allowed or not isinstance(before, Mapping) or any(k not in before for k in masked):
        raise InvalidHook(
            f"Bad request: {name} '{masked[0]}' is {MASK}: a stored value is only kept while the destination "
            "stays the same; send the real value."
        )
    return {k: before[k] if v == MASK else v for k, v in current.items()}


def _url_of(section: Any, key: str = "url") -> Any:
    return section.get(key) if isinstance(section, Mapping) else None


def _origin(url: Any) -> tuple[str, str, int | None] | None:
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        return (parts.scheme, (parts.hostname or "").lower(), parts.port)
    except ValueError:
        return None


def _restore_url(current: Any, before: Any) -> Any:
    masked = isinstance(current, str) and ":" + MASK + "@" in current
    if masked and isinstance(before, str) and _mask_url(before) == current:
        return before
    return current
