"""JSON Schemas for the OpenAPI document: bodies are parsed by hand (Webitel semantics), described here truthfully."""

from __future__ import annotations

from typing import Any

STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}

HOOK_ACTION = {
    "type": "object",
    "required": ["type", "method", "url"],
    "properties": {
        "type": {"type": "string", "minLength": 1, "description": "only `web` delivers"},
        "method": {"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
        "url": {"type": "string", "format": "uri", "pattern": "^https?://"},
        "fallbackUrl": {
            "type": ["string", "null"],
            "format": "uri",
            "pattern": "^https?://",
            "maxLength": 2048,
            "description": "where an attempt goes when the url gets no answer or a 5xx (docs/fallback.md); "
            "with it, url is at most 2048 characters too and differs from it",
        },
    },
}
FILTER_ENTRY = {
    "type": "object",
    "required": ["operation"],
    "properties": {
        "operation": {
            "type": "string",
            "enum": ["==", "!=", "<", ">", "<=", ">=", "reg"],
            "description": "any other operation is stored but never passes, as in Webitel (docs/webitel.md)",
        },
        "value": {"type": ["string", "number", "boolean", "null"]},
    },
}
HOOK_AUTH = {
    "type": "object",
    "properties": {
        "enabled": {"type": "boolean"},
        "url": {"type": "string"},
        "method": {"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
        "headers": STRING_MAP,
        "map": STRING_MAP,
        "cookie": {"type": "boolean"},
        "ttl": {"type": "number", "minimum": 0, "maximum": 86400},
    },
}
HOOK_PROPERTIES: dict[str, Any] = {
    "event": {
        "description": "one event key (Webitel), or an array of them: the hook gets events of every key",
        "anyOf": [
            {"type": "string", "minLength": 1, "examples": ["CUSTOM->engine::dialer_member_end"]},
            {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "minItems": 1,
                "maxItems": 64,
                "uniqueItems": True,
                "examples": [["CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"]],
            },
        ],
    },
    "retries": {
        "type": "integer",
        "minimum": 0,
        "maximum": 100,
        "description": "numeric strings are read as numbers; out of 1-100 is stored as 0 (docs/webitel.md)",
    },
    "delay": {
        "type": "number",
        "minimum": 0,
        "maximum": 86400,
        "description": "seconds; numeric strings are read as numbers, 0 or less is the default schedule",
    },
    "enable": {"type": "boolean", "description": "only true fires; a string or number is stored as false"},
    "description": {"type": "string"},
    "action": HOOK_ACTION,
    "fields": {"type": "array", "items": {"type": "string"}},
    "map": STRING_MAP,
    "filter": {"type": "object", "additionalProperties": FILTER_ENTRY},
    "headers": STRING_MAP,
    "auth": HOOK_AUTH,
    "customBody": {"type": "boolean"},
    "rawBody": {"type": "string"},
    "timeout": {"type": "number", "minimum": 0.1, "maximum": 60},
    "ttl": {"type": "number", "minimum": 1, "maximum": 2592000},
    "secret": {
        "type": "string",
        "pattern": "^whsec_",
        "description": "write-only; reads show whsec_********",
    },
    "disableOnGone": {"type": "boolean", "description": "a 410 Gone disables the hook (default false)"},
    "order": {
        "type": ["string", "null"],
        "enum": ["call", None],
        "description": "call: a call's deliveries go one at a time, in event order, numbered by X-Call-Sequence",
    },
}
HOOK_INPUT = {"type": "object", "required": ["event", "action"], "properties": HOOK_PROPERTIES}
HOOK_OUTPUT = {
    "type": "object",
    "required": ["_id", "domain", "event", "action"],
    "properties": {
        "_id": {"type": "string", "pattern": "^[0-9a-f]{24}$"},
        "domain": {"type": "string"},
        "disabledReason": {"type": "string"},
        **HOOK_PROPERTIES,
    },
}


def envelope(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["status", "data"],
        "properties": {"status": {"const": "OK"}, "data": data},
    }


ERROR = {
    "type": "object",
    "required": ["status", "info"],
    "properties": {"status": {"const": "error"}, "info": {"type": "string"}},
}
NULLABLE_HOOK = {"anyOf": [HOOK_OUTPUT, {"type": "null"}]}
INSERT_RESULT = {
    "type": "object",
    "required": ["result", "ops", "insertedCount", "insertedIds"],
    "properties": {
        "result": {"type": "object", "properties": {"ok": {"type": "integer"}, "n": {"type": "integer"}}},
        "ops": {"type": "array", "items": HOOK_OUTPUT},
        "insertedCount": {"type": "integer"},
        "insertedIds": {"type": "array", "items": {"type": "string"}},
    },
}
UPDATE_RESULT = {
    "type": "object",
    "required": ["n", "ok"],
    "properties": {"n": {"type": "integer"}, "nModified": {"type": "integer"}, "ok": {"type": "integer"}},
}
ATTEMPT_LEG = {
    "type": "object",
    "required": ["leg", "url", "statusCode", "durationMs", "error", "reason"],
    "properties": {
        "leg": {"type": "string", "enum": ["primary", "fallback"]},
        "url": {"type": "string", "description": "its destination, the password masked"},
        "statusCode": {"type": ["integer", "null"]},
        "durationMs": {"type": "number"},
        "error": {"type": ["string", "null"]},
        "reason": {
            "type": ["string", "null"],
            "description": "the fallback's X-Failover-Reason: timeout, refused, reset, unreachable, error, "
            "http 5xx, or paused (the primary's circuit is open: not sent)",
        },
    },
}
ATTEMPT = {
    "type": "object",
    "required": ["n", "at", "durationMs", "statusCode", "error", "response"],
    "properties": {
        "n": {"type": "integer"},
        "at": {"type": "number"},
        "durationMs": {"type": "number"},
        "statusCode": {"type": ["integer", "null"], "description": "the status that decided the attempt"},
        "error": {"type": ["string", "null"]},
        "response": {"type": ["string", "null"]},
        "legs": {
            "type": "array",
            "items": ATTEMPT_LEG,
            "description": "a hook with a fallbackUrl, when the fallback was sent: each request (docs/fallback.md)",
        },
    },
}
DELIVERY = {
    "type": "object",
    "required": ["id", "hookId", "status", "attempts"],
    "properties": {
        "id": {"type": "string"},
        "hookId": {"type": "string"},
        "eventId": {"type": "string"},
        "domain": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "delivered", "failed", "expired"]},
        "attempts": {"type": "integer"},
        "nextAttemptAt": {"type": ["number", "null"]},
        "expiresAt": {"type": ["number", "null"]},
        "lastStatus": {"type": ["integer", "null"]},
        "lastError": {"type": ["string", "null"]},
        "createdAt": {"type": "number"},
        "updatedAt": {"type": "number"},
        "callId": {"type": ["string", "null"], "description": "the event's call (SWITCHHOOK_CALL_HEADERS)"},
        "eventKey": {"type": ["string", "null"], "description": "the event's key (in the delivery log's lists)"},
        "event": {"type": ["object", "null"]},
        "attempts_log": {"type": "array", "items": ATTEMPT},
    },
}
EVENT_INPUT = {
    "description": "one FreeSWITCH event (flat object of string headers), an array of them, or text/event-plain",
    "oneOf": [
        {"type": "object", "additionalProperties": True, "required": ["Event-Name"]},
        {"type": "array", "items": {"type": "object", "additionalProperties": True}},
    ],
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Declare every error a route can answer, so the OpenAPI document is true."""
    text = {
        400: "Bad request",
        401: "No, invalid or expired credentials",
        403: "Permission denied",
        404: "Not found",
        409: "Already exists",
        413: "Body too large",
        429: "Rate limited",
        503: "Dependency unavailable",
    }
    return {c: {"description": text[c], "content": {"application/json": {"schema": ERROR}}} for c in codes}


def ok(schema: dict[str, Any], description: str = "OK") -> dict[int | str, dict[str, Any]]:
    return {200: {"description": description, "content": {"application/json": {"schema": schema}}}}


def json_request(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}
