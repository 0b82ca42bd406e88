"""Webitel's success envelope, serialised with orjson."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers)


def ok(data: Any, status: int = 200) -> Response:
    """`{"status": "OK", "data": ...}`."""
    return json_response({"status": "OK", "data": data}, status)
