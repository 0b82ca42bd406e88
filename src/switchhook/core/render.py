"""Templating and request building (docs/behaviour.md): `${name}` templates, default envelope, GET query strings."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote_plus, urlencode, urlsplit, urlunsplit

_PLACEHOLDER = re.compile(r"\$\{([\s\S]*?)\}")
#: Lone UTF-16 surrogates: Python's json module decodes `"\ud800"` into one, and it has no UTF-8 form.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_LINE_BREAK = re.compile(r"[\r\n]")
_MISSING = object()

Escape = Callable[[str], str]
Lookup = Callable[[Mapping[str, Any], str], Any]


def lookup(context: Mapping[str, Any], name: str) -> Any:
    """rawBody's lookup: `variable_<name>`, else `<name>`; a dotted name that is not a key walks nested objects.

    Webitel's `Message` constructor (webitel/engine-nodejs src/services/hook/hookClass.js) tried
    `message["variable_" + name] || message[name]`.
    """
    value = context.get("variable_" + name)
    if value is None or value == "":
        value = context.get(name, _MISSING)
    if value is _MISSING or value is None:
        value = _walk(context, name) if "." in name else None
    return value


def lookup_exact_first(context: Mapping[str, Any], name: str) -> Any:
    """Header templates' lookup: `<name>` first (all Webitel's `_setHeadersFromEvent` tried), then `variable_<name>`."""
    value = context.get(name)
    if value is None or value == "":
        value = context.get("variable_" + name, _MISSING)
    if value is _MISSING or value is None:
        value = _walk(context, name) if "." in name else None
    return value


def _walk(context: Mapping[str, Any], path: str) -> Any:
    first, *rest = path.split(".")
    node = lookup(context, first) if rest else None
    for part in rest:
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def to_text(value: Any) -> str:
    """How a value reads inside a template: missing -> "", 0 -> "0", false -> "false", objects as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def json_escape(text: str) -> str:
    """Escape for the inside of a JSON string literal (quotes, backslashes, control characters)."""
    # A lone surrogate is written as its \\u escape (ASCII mode), which JSON parsers read back exactly.
    return json.dumps(text, ensure_ascii=_SURROGATE.search(text) is not None)[1:-1]


def form_escape(text: str) -> str:
    return quote(text, safe="", errors="replace")


def no_escape(text: str) -> str:
    return text


def header_escape(text: str) -> str:
    """Header values can never carry a line break (no header injection)."""
    return _SURROGATE.sub("\ufffd", _LINE_BREAK.sub(" ", text))


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "replace")


def _json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON that every parser accepts: no NaN/Infinity, lone surrogates as \\u escapes."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:  # NaN or Infinity (Python's json module accepts them in events): send null
        value = _finite(value)
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate: ASCII mode writes it as its \\u escape
        return json.dumps(value, separators=(",", ":")).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def escape_for(content_type: str) -> Escape:
    """JSON escaping for JSON bodies, URL-encoding for form bodies, none for anything else."""
    kind = content_type.lower()
    if "json" in kind:
        return json_escape
    if "x-www-form-urlencoded" in kind:
        return form_escape
    return no_escape


def render(template: str, context: Mapping[str, Any], escape: Escape = no_escape, find: Lookup = lookup) -> str:
    """Replace every `${name}` in `template` with the escaped text of its value."""
    if "${" not in template:
        return template
    return _PLACEHOLDER.sub(lambda m: escape(to_text(find(context, m.group(1)))), template)


#: A JSON template split once: (literal text, placeholder name or None, whether the placeholder is in a string).
JsonTemplate = tuple[tuple[str, str | None, bool], ...]
_json_templates: dict[str, JsonTemplate] = {}


def json_template(template: str) -> JsonTemplate:
    """Split a rawBody template at its placeholders, noting which sit inside a JSON string literal (cached)."""
    parts = _json_templates.get(template)
    if parts is not None:
        return parts
    found: list[tuple[str, str | None, bool]] = []
    in_string = False
    start = 0
    for match in _PLACEHOLDER.finditer(template):
        literal = template[start : match.start()]
        in_string = _string_state(literal, in_string)
        found.append((literal, match.group(1), in_string))
        start = match.end()
    found.append((template[start:], None, False))
    parts = tuple(found)
    if len(_json_templates) > 1_000:  # hooks reuse a few templates; a bound keeps odd clients from growing it
        _json_templates.clear()
    _json_templates[template] = parts
    return parts


def _string_state(literal: str, in_string: bool) -> bool:
    """Whether the text after `literal` is inside a JSON string literal, given the state before it."""
    if '"' not in literal:
        return in_string
    escaped = False
    for char in literal:
        if escaped:
            escaped = False
        elif char == "\\" and in_string:
            escaped = True
        elif char == '"':
            in_string = not in_string
    return in_string


def render_json(template: str, context: Mapping[str, Any]) -> str:
    """rawBody as JSON: values JSON-escaped inside string literals, their text verbatim outside them.

    Outside a string literal Webitel's plain substitution is kept, so `{"obj": ${payload}}` with a JSON text
    value nests it; inside one, escaping keeps a quote in a caller name from breaking the JSON (docs/webitel.md).
    """
    if "${" not in template:
        return template
    out: list[str] = []
    for literal, name, in_string in json_template(template):
        out.append(literal)
        if name is not None:
            text = to_text(lookup(context, name))
            out.append(json_escape(text) if in_string else text)
    return "".join(out)


def render_mapping(
    templates: Mapping[str, Any], context: Mapping[str, Any], escape: Escape, find: Lookup = lookup_exact_first
) -> dict[str, str]:
    """Render each string value of a `{name: template}` object; non-string values are dropped (Webitel)."""
    return {key: render(value, context, escape, find) for key, value in templates.items() if isinstance(value, str)}


def render_headers(templates: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, str]:
    """Render header templates (exact key first, then `variable_<key>`); no value ever carries CR or LF."""
    return {key: header_escape(value) for key, value in render_mapping(templates, context, header_escape).items()}


def build_data(event: Mapping[str, Any], fields: list[str], renames: Mapping[str, str]) -> dict[str, Any]:
    """The hook's own copy of the event: only `fields` (when given), keys renamed by `map`."""
    data = {k: event[k] for k in fields if k in event} if fields else dict(event)
    for source, target in renames.items():
        if source in data and source != target:
            data[target] = data.pop(source)
    return data


MAX_QUERY_DEPTH = 32  # deeper values are sent as JSON text in one parameter


def query_string(data: Mapping[str, Any]) -> str:
    """qs-style encoding of an object: nested objects as `a[b]=c`, lists as `a[0]=x`."""
    pairs: list[tuple[str, str]] = []

    def add(prefix: str, value: Any, depth: int) -> None:
        if depth < MAX_QUERY_DEPTH and isinstance(value, Mapping):
            for key, item in value.items():
                add(f"{prefix}[{key}]", item, depth + 1)
        elif depth < MAX_QUERY_DEPTH and isinstance(value, list):
            for index, item in enumerate(value):
                add(f"{prefix}[{index}]", item, depth + 1)
        else:
            try:
                pairs.append((prefix, to_text(value)))
            except RecursionError:  # absurdly deep nesting below the cap: dropped, never a crash
                pairs.append((prefix, ""))

    for key, value in data.items():
        add(str(key), value, 0)
    return urlencode(pairs, quote_via=quote, errors="replace")


def with_query(url: str, query: str) -> str:
    """Add a query string to a URL; a parameter the URL already has is replaced, not repeated.

    Webitel's `request` client merged `qs` into the URL's own query (`base[name] = qs[name]` in
    request/request.js `Request.prototype.qs`): a URL parameter named as an event field took the event's value.
    """
    if not query:
        return url
    parts = urlsplit(url)
    joined = _merge_query(parts.query, query) if parts.query else query
    return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, parts.fragment))


def _merge_query(own: str, added: str) -> str:
    """The URL's parameters in their order (replaced ones in place, their repeats dropped), then the new ones."""
    groups: dict[str, list[str]] = {}
    for part in added.split("&"):
        groups.setdefault(_top_name(part), []).append(part)
    out: list[str] = []
    placed: set[str] = set()
    for part in own.split("&"):
        name = _top_name(part)
        if name not in groups:
            out.append(part)
        elif name not in placed:
            out.extend(groups[name])
            placed.add(name)
    out.extend(part for name, group in groups.items() if name not in placed for part in group)
    return "&".join(out)


def _top_name(part: str) -> str:
    """The top-level name of `a[b]=c` (qs nesting), decoded."""
    return unquote_plus(part.split("=", 1)[0], errors="replace").split("[", 1)[0]


@dataclass(frozen=True, slots=True)
class RenderedRequest:
    """What will be sent: the delivery path's unit of work after templating."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    json_body: bool = False
    notes: list[str] = field(default_factory=list)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


#: The header every request for an event with a call carries (docs/behaviour.md, Calls). switchhook's own, like the
#: signature: a hook header of the same name is dropped, so a receiver can trust it is the call switchhook saw and
#: that a request without it is for an event without a call.
CALL_ID_HEADER = "X-Call-Id"


def _set_call_id(headers: dict[str, str], call_id: str | None) -> None:
    if any(key.lower() == "x-call-id" for key in headers):  # rare: only a hook that sets it itself
        for key in [k for k in headers if k.lower() == "x-call-id"]:
            del headers[key]
    if call_id is not None:
        headers[CALL_ID_HEADER] = header_escape(call_id)


def build_request(
    *,
    method: str,
    url: str,
    event_key: str,
    message_id: str,
    event: Mapping[str, Any],
    auth_values: Mapping[str, str],
    header_templates: Mapping[str, Any],
    fields: list[str],
    renames: Mapping[str, str],
    custom_body: bool,
    raw_body: Any,
    dumps: Callable[[Any], bytes] | None = None,
    call_id: str | None = None,
) -> RenderedRequest:
    """Build the main request of a delivery (docs/behaviour.md, Delivery). Auth values feed templates, never `data`.

    `dumps` is a faster JSON encoder for the envelope (the caller's choice; it may raise, then ours is used).
    `call_id`: the event's call, sent as `X-Call-Id` (CALL_ID_HEADER) whatever the hook's own headers say.
    """
    context: Mapping[str, Any] = {**event, **auth_values} if auth_values else event
    method = method.upper()
    headers = render_headers(header_templates, context)
    _set_call_id(headers, call_id)
    if _header(headers, "Accept") is None:  # what `request({json: …})` sent, now on every method (docs/webitel.md)
        headers["Accept"] = "application/json"
    if "auth:cookie" in auth_values and _header(headers, "Cookie") is None:
        headers["Cookie"] = header_escape(auth_values["auth:cookie"])
    content_type = _header(headers, "Content-Type")
    notes: list[str] = []
    payload: Any
    text: str | None = None
    if custom_body and isinstance(raw_body, str):
        escape = escape_for(content_type or "application/json")
        text = render_json(raw_body, context) if escape is json_escape else render(raw_body, context, escape)
        try:
            payload = json.loads(text)
        except (ValueError, RecursionError):
            payload = None
            notes.append("rawBody did not render to JSON: sent verbatim")
    else:
        payload = None
        data = build_data(event, fields, renames)
        envelope = {"id": message_id, "action": event_key, "data": data}

    if method == "GET":
        if text is not None:
            if isinstance(payload, Mapping):
                query = query_string(payload)
            else:  # a hand-written query template: values URL-encoded, so none can add parameters
                query = render(raw_body, context, form_escape).lstrip("?")
        else:
            query = query_string(data)
        return RenderedRequest(method, with_query(url, query), headers, None, False, notes)

    if text is not None:
        body = _utf8(text)
        is_json = payload is not None or text.strip() in ("null",)
        if content_type is None:
            headers["Content-Type"] = "application/json" if is_json else "text/plain; charset=utf-8"
        return RenderedRequest(method, url, headers, body, is_json, notes)
    encoded: bytes | None = None
    if dumps is not None:
        try:
            encoded = dumps(envelope)
        except (TypeError, ValueError):  # e.g. a lone surrogate: ours escapes it
            encoded = None
    body = encoded if encoded is not None else _json_bytes(envelope)
    if content_type is None:
        headers["Content-Type"] = "application/json"
    return RenderedRequest(method, url, headers, body, True, notes)


@dataclass(frozen=True, slots=True)
class AuthRequest:
    method: str
    url: str
    headers: dict[str, str]
    query: dict[str, str]
    json_body: dict[str, str] | None


def build_auth_request(auth: Mapping[str, Any], event: Mapping[str, Any]) -> AuthRequest:
    """The auth pre-request (docs/behaviour.md, Delivery): `auth.map` as query parameters for GET, else a JSON body."""
    method = str(auth.get("method") or "GET").upper()
    headers = render_headers(auth.get("headers") or {}, event)
    if _header(headers, "Accept") is None:
        headers["Accept"] = "application/json"
    params = render_mapping(auth.get("map") or {}, event, no_escape)
    if method == "GET":
        return AuthRequest(method, str(auth["url"]), headers, params, None)
    return AuthRequest(method, str(auth["url"]), headers, {}, params)


def auth_values(
    header_items: list[tuple[str, str]], body: bytes, content_type: str, forward_cookie: bool
) -> dict[str, str]:
    """Turn a 2xx auth response into `auth:body:<key>` / `auth:header:<name>` template values."""
    values: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in header_items:
        lowered = name.lower()
        if lowered == "set-cookie":
            cookies.append(value)
            cookie_name, _, rest = value.partition("=")
            values["auth:header:" + cookie_name.strip()] = rest.split(";", 1)[0]
        else:
            values["auth:header:" + lowered] = value
    if cookies:
        values["auth:header:set-cookie"] = ";".join(cookies)
        if forward_cookie:
            # Forward name=value pairs only: attributes like Path or HttpOnly are not cookies.
            values["auth:cookie"] = "; ".join(c.split(";", 1)[0].strip() for c in cookies)
    if body and ("json" in content_type.lower() or body[:1] in (b"{", b"[")):
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deeply
            parsed = None
        if isinstance(parsed, dict):
            for key, value in parsed.items():
                if isinstance(value, str | int | float | bool):
                    values["auth:body:" + str(key)] = to_text(value)
    return values
