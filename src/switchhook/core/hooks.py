"""The hook document (docs/behaviour.md): validation, Webitel key order, and the compiled form the pipeline uses."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from switchhook.core.errors import InvalidHook
from switchhook.core.filters import (
    DEFAULT_REGEX_LIMITS,
    OPERATIONS,
    Condition,
    RegexLimits,
    compile_filter,
    compile_pattern,
)
from switchhook.core.redact import redact, restore
from switchhook.core.signing import secret_key

#: Webitel's whitelist, in the order its service copied them, plus switchhook's extensions.
HOOK_KEYS = (
    "domain",
    "event",
    "retries",
    "delay",
    "enable",
    "description",
    "action",
    "fields",
    "map",
    "filter",
    "headers",
    "auth",
    "customBody",
    "rawBody",
    "timeout",
    "ttl",
    "secret",
    "disableOnGone",
    "order",
)
STORED_KEYS = HOOK_KEYS[1:]
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: `order`: "call" sends the deliveries of one call one at a time, in event order (docs/calls.md).
ORDERS = ("call",)
MAX_RETRIES = 100
MAX_TIMEOUT_S = 60.0
MAX_DELAY_S = 86_400.0
MAX_TTL_S = 30 * 86_400.0
#: Event keys one hook may subscribe to (`event` as an array).
MAX_EVENT_KEYS = 64
#: The longest `action.fallbackUrl`, and `action.url` of a hook that has one: its requests to the fallback carry the
#: primary URL in X-Original-Url, and receivers commonly refuse header lines past 8 KiB.
MAX_FALLBACK_URL_CHARS = 2048
#: What reads show instead of a secret; sending it back on PUT keeps the stored secret.
SECRET_MASK = "whsec_********"  # noqa: S105 - a display mask, not a secret
_HOOK_ID = re.compile(r"[0-9a-fA-F]{24}")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEADER_VALUE_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a tab is field whitespace (RFC 9110)
#: Headers that frame the message or belong to one connection: switchhook sets them itself. A hook that set
#: them could desynchronise a pooled connection (a second request smuggled inside its body), so they are
#: refused at write time and dropped from a document stored before (RELIABILITY.md, hostile tenants).
CONNECTION_HEADERS = frozenset(
    ("transfer-encoding", "content-length", "connection", "keep-alive", "upgrade", "te", "trailer", "host")
)
_DECIMAL = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def is_hook_id(value: str) -> bool:
    """24 hex digits in either case, as Mongo's `ObjectID.isValid` took them (src/db/mongodb/query/hook.js)."""
    return bool(_HOOK_ID.fullmatch(value))  # not match+$: "$" also matches before a trailing newline


def normal_hook_id(value: str) -> str:
    """The stored spelling of an id: an ObjectId is a number, `5A0B…` and `5a0b…` name the same hook."""
    return value.lower()


def _bad(message: str) -> InvalidHook:
    return InvalidHook("Bad request: " + message)


def _string_map(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise _bad(f"{name} must be an object of strings.")
    return dict(value)


def _template_map(value: Any, name: str) -> dict[str, str]:
    """Headers, auth.headers, auth.map: Webitel templated string values only and silently skipped the rest
    (src/services/hook/hookClass.js `_setHeadersFromEvent`); switchhook drops them when storing, so a read
    shows what is sent (docs/webitel.md)."""
    if not isinstance(value, Mapping):
        raise _bad(f"{name} must be an object of strings.")
    return {k: v for k, v in value.items() if isinstance(v, str)}


@dataclass(frozen=True, slots=True)
class HookLimits:
    """What one hook document may cost (RELIABILITY.md, hostile tenants): its size and its regexes."""

    #: The stored document, serialized as JSON (UTF-8 bytes).
    max_bytes: int = 64 * 1024
    regex: RegexLimits = field(default_factory=lambda: DEFAULT_REGEX_LIMITS)


DEFAULT_LIMITS = HookLimits()


def is_connection_header(name: str) -> bool:
    """Whether a hook may not set `name` (framing, hop-by-hop, Host, Proxy-*): see CONNECTION_HEADERS."""
    lowered = name.lower()
    return lowered in CONNECTION_HEADERS or lowered.startswith("proxy-")


def without_connection_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """`headers` less the ones a hook may not set (a document stored before they were refused)."""
    return {k: v for k, v in headers.items() if not is_connection_header(k)}


def _headers(value: Any, name: str) -> dict[str, str]:
    headers = _template_map(value, name)
    for header, text in headers.items():
        if not _HEADER_NAME.fullmatch(header):
            raise _bad(f"{name} has an invalid header name {header!r}.")
        if is_connection_header(header):
            raise _bad(f"{name} must not set {header!r}: switchhook frames each request and owns its connection.")
        if _HEADER_VALUE_CONTROL.search(text):
            raise _bad(f"{name} {header!r} must not contain control characters.")
    return headers


def _number(value: Any, name: str, low: float, high: float) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(f"{name} must be a number.")
    if not low <= value <= high:
        raise _bad(f"{name} must be between {_plain(low)} and {_plain(high)}.")
    return value


def _plain(number: float) -> str:
    """2592000 rather than `:g`'s 2.592e+06 in messages."""
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _http_url(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(f"{name} is required.")
    if _CONTROL.search(value):  # urlsplit would silently drop tabs and line breaks
        raise _bad(f"{name} must not contain control characters.")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise _bad(f"{name} is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not host:
        raise _bad(f"{name} must be an absolute http or https URL.")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise _bad(f"{name} has an invalid port.") from None
    return value


def _numeric(value: Any, name: str) -> float | int | None:
    """A JSON number, or a numeric string as Webitel's JS comparisons read it (`"3" <= 100`); "" is absent."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if not _DECIMAL.fullmatch(text):
            raise _bad(f"{name} must be a number.")
        number = float(text)
        return int(number) if number.is_integer() else number
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(f"{name} must be a number.")
    return value


def _retries(value: Any) -> int | None:
    """Webitel's rule, `0 < retries <= maxRetries` else 0 (src/services/hook/hookClass.js `Hook`); a fraction
    counts its whole part, as its `retries < attempt` comparison did."""
    number = _numeric(value, "retries")
    if number is None:
        return None
    return math.floor(number) if 0 < number <= MAX_RETRIES else 0


def _delay(value: Any) -> float | int | None:
    """Webitel: `delay > 0 ? delay : default` (src/services/hook/hookClass.js `Hook`), so 0 or less means
    the default schedule, which switchhook spells 0; above a day stays a 400 (it would not be kept)."""
    number = _numeric(value, "delay")
    if number is None:
        return None
    return _number(max(number, 0), "delay", 0, MAX_DELAY_S)


def _enable(value: Any) -> bool:
    """Webitel fired only `enable === true` (its query was `{enable: true}`, src/services/hook/hookClass.js
    `Trigger.find`): a string or number never fired, so it is stored as false and a read says so."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str | int | float):
        return False
    raise _bad("enable must be true or false.")


def _boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(f"{name} must be true or false.")
    return value


def validate_hook(
    body: Any,
    previous_secret: str | None = None,
    previous: Mapping[str, Any] | None = None,
    limits: HookLimits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """Check a create/replace body and return the document to store (unknown keys dropped, no domain).

    `previous` is the stored document a replacement may still carry masked secrets of (see redact).
    The document may not exceed `limits` (its JSON size, its regexes); compiling its regexes is CPU work
    of up to a few milliseconds: callers on an event loop run this in a thread.
    """
    doc = _validate(body, previous_secret, previous, limits)
    action = doc["action"]
    if action.get("fallbackUrl") == action["url"]:  # compared once masked passwords are restored
        raise _bad("action.fallbackUrl must differ from action.url.")
    size = len(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        raise _bad(f"the hook document is {size} bytes as JSON, more than the {limits.max_bytes} allowed.")
    return doc


def _validate(
    body: Any, previous_secret: str | None, previous: Mapping[str, Any] | None, limits: HookLimits
) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise _bad("hook must be a JSON object.")
    event = _event(body.get("event"))
    action = body.get("action")
    if not isinstance(action, Mapping) or not all(
        isinstance(action.get(k), str) and action.get(k) for k in ("type", "method", "url")
    ):
        raise _bad("action options is required.")
    if action["method"].upper() not in METHODS:
        raise _bad(f"action.method must be one of {', '.join(METHODS)}.")
    _http_url(action["url"], "action.url")
    action = _fallback(action)
    doc: dict[str, Any] = {"event": event}
    for key in STORED_KEYS[1:]:
        if key not in body or body[key] is None:
            continue
        value = _validate_field(key, body[key], previous_secret, limits.regex)
        if value is not None:
            doc[key] = value
    doc["action"] = {**dict(action), "method": action["method"].upper()}
    return restore({key: doc[key] for key in STORED_KEYS if key in doc}, previous)


def _fallback(action: Mapping[str, Any]) -> Mapping[str, Any]:
    """`action.fallbackUrl` (docs/fallback.md): optional, an absolute http(s) URL (other than `action.url`: see
    validate_hook), it and `action.url` at most MAX_FALLBACK_URL_CHARS; null is the same as absent (not stored)."""
    fallback = action.get("fallbackUrl")
    if fallback is None:
        return {k: v for k, v in action.items() if k != "fallbackUrl"} if "fallbackUrl" in action else action
    if not isinstance(fallback, str) or not fallback:
        raise _bad("action.fallbackUrl must be an absolute http or https URL, or null.")
    _http_url(fallback, "action.fallbackUrl")
    for name in ("url", "fallbackUrl"):
        if len(action[name]) > MAX_FALLBACK_URL_CHARS:
            raise _bad(f"action.{name} must be at most {MAX_FALLBACK_URL_CHARS} characters with a fallbackUrl set.")
    return action


def _event(value: Any) -> str | list[str]:
    """`event`: one event key (Webitel), or an array of them, stored as given."""
    if isinstance(value, list):
        if not value or len(value) > MAX_EVENT_KEYS:
            raise _bad(f"event must be a string or an array of 1 to {MAX_EVENT_KEYS} event names.")
        for key in value:
            _event_name(key)
        if len(set(value)) != len(value):
            raise _bad("event must not name the same event twice.")
        return list(value)
    return _event_name(value)


def _event_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad("event name is required.")
    if "\x00" in value:
        raise _bad("event name must not contain NUL characters.")
    return value


def event_keys(event: Any) -> tuple[str, ...]:
    """The event keys a stored `event` subscribes to: the string, or every string of the array."""
    if isinstance(event, str):
        return (event,)
    if isinstance(event, list | tuple):
        return tuple(dict.fromkeys(k for k in event if isinstance(k, str)))
    return ()


def _validate_field(key: str, value: Any, previous_secret: str | None, regex_limits: RegexLimits) -> Any:
    if key == "enable":
        return _enable(value)
    if key in ("customBody", "disableOnGone"):
        return _boolean(value, key)
    if key in ("description", "rawBody"):
        if not isinstance(value, str):
            raise _bad(f"{key} must be a string.")
        return value
    if key == "fields":
        if not isinstance(value, list) or not all(isinstance(f, str) for f in value):
            raise _bad("fields must be a list of strings.")
        return value
    if key == "map":
        return _string_map(value, key)
    if key == "headers":
        return _headers(value, key)
    if key == "filter":
        if not isinstance(value, Mapping):
            raise _bad("filter must be an object.")
        known, _unknown = split_filter(value)
        compile_filter(known, regex_limits)
        return dict(value)
    if key == "auth":
        return _validate_auth(value)
    if key == "retries":
        return _retries(value)
    if key == "delay":
        return _delay(value)
    if key == "timeout":
        return _number(value, "timeout", 0.1, MAX_TIMEOUT_S)
    if key == "ttl":
        return _number(value, "ttl", 1, MAX_TTL_S)
    if key == "order":
        if value not in ORDERS:
            raise _bad(f"order must be null or one of {', '.join(map(repr, ORDERS))}.")
        return value
    if key == "secret":
        if value == SECRET_MASK and previous_secret:
            return previous_secret
        secret_key(value)
        return value
    return value  # "action" is checked by the caller


def _validate_auth(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad("auth must be an object.")
    auth = dict(value)
    for key in ("enabled", "cookie"):
        if key in auth and auth[key] is not None:
            _boolean(auth[key], f"auth.{key}")
    if auth.get("headers") is not None:
        auth["headers"] = _headers(auth["headers"], "auth.headers")
    if auth.get("map") is not None:
        auth["map"] = _template_map(auth["map"], "auth.map")
    if auth.get("method") is not None and (
        not isinstance(auth["method"], str) or auth["method"].upper() not in METHODS
    ):
        raise _bad(f"auth.method must be one of {', '.join(METHODS)}.")
    if "ttl" in auth and auth["ttl"] is not None:
        _number(auth["ttl"], "auth.ttl", 0, 86_400)
    # Enabled with no URL is stored: Webitel ran the pre-request only `if (auth.enabled && auth.url)`
    # (src/services/hook/hookClass.js `Trigger.send`), and so does Hook.compile below.
    if auth.get("url") not in (None, ""):
        _http_url(auth["url"], "auth.url")
    return auth


def split_filter(spec: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(entries with an operation Webitel knew, entries with any other operation).

    Webitel stored any operation and its `Hook.check` failed an entry whose operation is not one of its
    `Operations` (src/services/hook/hookClass.js), so such a hook never fires; switchhook stores it the same
    way, never passes it, and the dry run names it. A non-object entry is still a 400.
    """
    known: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    for key, entry in spec.items():
        if isinstance(entry, Mapping) and entry.get("operation") not in OPERATIONS:
            unknown[key] = entry
        else:
            known[key] = entry
    return known, unknown


#: A pattern no text matches: the compiled form of an entry whose operation is unknown.
_NEVER = compile_pattern("(?!)")


def _conditions(spec: Any, regex_limits: RegexLimits) -> tuple[tuple[Condition, ...], dict[str, str]]:
    if not isinstance(spec, Mapping):
        return (), {}
    known, unknown = split_filter(spec)
    never = tuple(
        Condition(key=key, operation="reg", value=None, pattern=_NEVER) for key in unknown
    )  # never holds, whatever the event
    notes = {
        key: f"unknown operation {entry.get('operation')!r}: this condition never holds (as in Webitel)"
        for key, entry in unknown.items()
    }
    return compile_filter(known, regex_limits) + never, notes


def public_view(doc: Mapping[str, Any], hook_id: str, domain: str, *, id_first: bool = True) -> dict[str, Any]:
    """The document as the API shows it: Webitel key order, secret and credentials masked."""
    doc = redact(doc)
    body = {"domain": domain, **{k: doc[k] for k in STORED_KEYS if k in doc}}
    if "secret" in body:
        body["secret"] = SECRET_MASK
    return {"_id": hook_id, **body} if id_first else {**body, "_id": hook_id}


def _sendable(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """The document less the connection headers a version before they were refused may have stored."""
    headers, auth = doc.get("headers"), doc.get("auth")
    auth_headers = auth.get("headers") if isinstance(auth, Mapping) else None
    if not any(isinstance(h, Mapping) and any(is_connection_header(k) for k in h) for h in (headers, auth_headers)):
        return doc  # the usual case: no copy
    cleaned = dict(doc)
    if isinstance(headers, Mapping):
        cleaned["headers"] = without_connection_headers(headers)
    if isinstance(auth, Mapping) and isinstance(auth_headers, Mapping):
        cleaned["auth"] = {**auth, "headers": without_connection_headers(auth_headers)}
    return cleaned


def _fallback_url(action: Any) -> str | None:
    fallback = action.get("fallbackUrl") if isinstance(action, Mapping) else None
    return fallback if isinstance(fallback, str) and fallback else None


@dataclass(frozen=True, slots=True)
class Hook:
    """A stored hook compiled for the pipeline: matching, filtering and request building read this."""

    id: str
    domain: str
    event: str  # its first event key (the only one of a Webitel hook)
    enabled: bool
    doc: Mapping[str, Any]
    conditions: tuple[Condition, ...]
    #: Only enabled `web` hooks send anything (Webitel).
    delivers: bool = False
    #: The HMAC key of `secret`, decoded once here rather than per request.
    signing_key: bytes | None = None
    #: The auth pre-request, when enabled with a URL.
    auth: Mapping[str, Any] | None = None
    #: Filter keys whose operation is unknown, with what the dry run says about each (they never pass).
    filter_notes: Mapping[str, str] | None = None
    #: Its `reg` conditions: what matching it may cost in time (none: matching it costs no budget).
    regexes: int = 0
    #: Every event key it subscribes to (`event` a string: that one); it matches events of any of them.
    events: tuple[str, ...] = ()
    #: `"order": "call"`: its deliveries of one call go one at a time, in event order (core/admission.py).
    ordered: bool = False
    #: `action.fallbackUrl`: where an attempt whose primary got no answer or a 5xx goes next (core/failover.py).
    fallback_url: str | None = None

    @classmethod
    def compile(cls, hook_id: str, domain: str, doc: Mapping[str, Any], limits: HookLimits = DEFAULT_LIMITS) -> Hook:
        """The pipeline's form of a stored document; InvalidHook when it is over today's `limits` (a regex
        stored by an older version): the caller skips such a hook rather than compile it."""
        doc = _sendable(doc)
        filter_spec = doc.get("filter") or {}
        action = doc.get("action") or {}
        enabled = doc.get("enable") is True
        secret = doc.get("secret")
        auth = doc.get("auth")
        conditions, notes = _conditions(filter_spec, limits.regex)
        keys = event_keys(doc.get("event"))
        return cls(
            id=hook_id,
            domain=domain,
            event=keys[0] if keys else str(doc.get("event", "")),
            events=keys,
            enabled=enabled,
            doc=doc,
            conditions=conditions,
            delivers=enabled and isinstance(action, Mapping) and action.get("type") == "web",
            signing_key=secret_key(secret) if isinstance(secret, str) and secret else None,
            auth=auth if isinstance(auth, Mapping) and auth.get("enabled") is True and auth.get("url") else None,
            filter_notes=notes or None,
            regexes=sum(1 for c in conditions if c.operation == "reg" and c.value is not None),
            ordered=doc.get("order") == "call",
            fallback_url=_fallback_url(action),
        )

    def max_attempts(self, default_retries: int) -> int:
        retries = self.doc.get("retries")
        return 1 + (int(retries) if isinstance(retries, int) else default_retries)

    @property
    def delay_s(self) -> float | None:
        delay = self.doc.get("delay")
        return float(delay) if isinstance(delay, int | float) and delay > 0 else None

    def timeout_s(self, default_s: float) -> float:
        timeout = self.doc.get("timeout")
        return float(timeout) if isinstance(timeout, int | float) else default_s

    @property
    def ttl_s(self) -> float | None:
        ttl = self.doc.get("ttl")
        return float(ttl) if isinstance(ttl, int | float) else None

    @property
    def disable_on_gone(self) -> bool:
        """Whether a 410 Gone disables the hook (opt-in); without it a 410 fails only that delivery."""
        return self.doc.get("disableOnGone") is True
