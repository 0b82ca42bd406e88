"""Webitel's stored documents as `mongoexport` writes them: extended JSON decoded, hooks and domain tokens read.

A `mongoexport` of Webitel's Mongo database writes one document per line in MongoDB Extended JSON: an ObjectId
is `{"$oid": "5a…"}`, a date `{"$date": …}`, a number in canonical mode `{"$numberInt": "3"}`. The shapes read
here are Webitel's own (`webitel/engine-nodejs`): a hook as `src/services/hook/index.js` stored it, a domain
with its `tokens` array as `src/services/auth.js` `genDomainToken` pushed them (`src/db/mongodb/query/domain.js`
`addToken`): `{uuid, expire, roleName, createdBy, createdOn, enabled}`. See docs/webitel.md "Migrating".
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from switchhook.core.errors import ValidationFailed

_ISO_Z = re.compile(r"Z$")


def decode(value: Any) -> Any:
    """Extended JSON (canonical, relaxed or the legacy strict mode of mongoexport 3.x) to plain values."""
    if isinstance(value, list):
        return [decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, inner), *_ = value.items()
        if key == "$oid" and isinstance(inner, str):
            return inner.lower()
        if key in ("$numberInt", "$numberLong") and isinstance(inner, str | int):
            return int(inner)
        if key in ("$numberDouble", "$numberDecimal") and isinstance(inner, str | int | float):
            number = float(inner)
            return int(number) if number.is_integer() else number
        if key == "$date":
            return _date_ms(inner)
        if key == "$undefined":
            return None
    return {key: decode(inner) for key, inner in value.items()}


def _date_ms(value: Any) -> Any:
    """A `$date` as milliseconds since the epoch, the unit Webitel kept its times in."""
    value = decode(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(_ISO_Z.sub("+00:00", value)).timestamp() * 1000)
        except ValueError:
            return value
    return value


def documents(text: str) -> Iterator[tuple[int, Any]]:
    """(line number, decoded document) of JSON lines, or of one JSON array (`mongoexport --jsonArray`)."""
    import json  # stdlib, pure

    stripped = text.lstrip()
    if stripped.startswith("["):
        for index, item in enumerate(json.loads(stripped), start=1):
            yield index, decode(item)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield number, decode(json.loads(line))
            except json.JSONDecodeError as exc:
                yield number, ValidationFailed(f"not JSON: {exc}")


@dataclass(frozen=True, slots=True)
class WebitelHook:
    """A stored Webitel hook: its ObjectId (kept as the switchhook id), its domain, the rest of the document."""

    id: str
    domain: str
    body: dict[str, Any]


def read_hook(doc: Any) -> WebitelHook:
    """The id, domain and body of one `hook` collection document; ValidationFailed says what is missing."""
    if not isinstance(doc, Mapping):
        raise ValidationFailed("a hook document must be a JSON object")
    hook_id, domain = doc.get("_id"), doc.get("domain")
    if not isinstance(hook_id, str) or not re.fullmatch(r"[0-9a-f]{24}", hook_id):
        raise ValidationFailed(f"_id must be an ObjectId, not {hook_id!r}")
    if not isinstance(domain, str) or not domain:
        raise ValidationFailed("domain is missing")
    body = {key: value for key, value in doc.items() if key not in ("_id", "domain")}
    return WebitelHook(hook_id, domain, body)


@dataclass(frozen=True, slots=True)
class WebitelToken:
    """One entry of a Webitel domain's `tokens` array."""

    id: str
    role: str
    expires_ms: int | None  # None: Webitel minted it without `exp`, and such a token never expired
    enabled: bool
    created_by: str
    created_ms: int | None


def read_domain(doc: Any) -> tuple[str, list[WebitelToken | ValidationFailed]]:
    """A `domains` document's name and its tokens (or why each cannot be read)."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("name"), str) or not doc["name"]:
        raise ValidationFailed("a domain document needs a name")
    tokens: list[WebitelToken | ValidationFailed] = []
    for entry in doc.get("tokens") or []:
        tokens.append(_read_token(entry))
    return doc["name"], tokens


def _read_token(entry: Any) -> WebitelToken | ValidationFailed:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("uuid"), str) or not entry["uuid"]:
        return ValidationFailed("a token needs a uuid")
    role, expire, created = entry.get("roleName"), entry.get("expire"), entry.get("createdOn")
    if not isinstance(role, str) or not role:
        return ValidationFailed(f"token {entry['uuid']} has no roleName")
    if expire is not None and (isinstance(expire, bool) or not isinstance(expire, int | float)):
        return ValidationFailed(f"token {entry['uuid']} has an unreadable expire {expire!r}")
    return WebitelToken(
        id=entry["uuid"],
        role=role,
        expires_ms=int(expire) if expire is not None else None,
        # Webitel's lookup was `tokens: {$elemMatch: {uuid, enabled: true}}`: only the boolean counted.
        enabled=entry.get("enabled") is True,
        created_by=entry["createdBy"] if isinstance(entry.get("createdBy"), str) else "webitel",
        created_ms=int(created) if isinstance(created, int | float) and not isinstance(created, bool) else None,
    )
