"""One delivery attempt as a pipeline of small stages: auth -> build request -> sign -> send -> classify."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from switchhook.core.events import Event
from switchhook.core.hooks import Hook
from switchhook.core.redact import redact
from switchhook.core.render import RenderedRequest, auth_values, build_auth_request, build_request
from switchhook.core.retry import Delivered, GiveUp, Outcome, Retry, decide
from switchhook.core.signing import signature_headers
from switchhook.delivery.sender import HttpResult, Sender
from switchhook.services.events import Job
from switchhook.store.base import AttemptRow, Finish

AUTH_TIMEOUT_S = 10.0
#: The auth response is read whole (a 4.6 KB OIDC token reply lost every `auth:body:*` value at 4 KiB), up to this.
AUTH_MAX_RESPONSE_BYTES = 1024 * 1024
logger = logging.getLogger("switchhook.delivery")
#: An ordered hook's requests number the call's deliveries, 1, 2, 3 ... in sending order (docs/calls.md); a retry
#: keeps its number. switchhook's own, like X-Call-Id: a hook header of that name is replaced.
CALL_SEQUENCE_HEADER = "X-Call-Sequence"


@dataclass(slots=True)
class AttemptReport:
    """The result of one attempt: what to record, and whether the hook must be disabled."""

    finish: Finish
    outcome: Outcome | None
    request: RenderedRequest | None
    response: HttpResult | None


class AuthCache:
    """`auth.ttl` caching of auth pre-request results, per hook (an extension: docs/behaviour.md, "Delivery")."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._entries: dict[str, tuple[float, dict[str, str]]] = {}
        self._clock = clock

    def get(self, hook_id: str) -> dict[str, str] | None:
        entry = self._entries.get(hook_id)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def put(self, hook_id: str, ttl_s: float, values: dict[str, str]) -> None:
        if ttl_s > 0:
            self._entries[hook_id] = (self._clock() + ttl_s, values)

    def drop(self, hook_id: str) -> None:
        self._entries.pop(hook_id, None)


class AuthFailed(Exception):
    def __init__(self, message: str, terminal: bool = False) -> None:
        super().__init__(message)
        self.terminal = terminal  # never retried (the egress guard refused the auth URL)


class DeliveryPipeline:
    def __init__(
        self,
        sender: Sender,
        *,
        default_timeout_s: float,
        default_retries: int,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._sender = sender
        self._default_timeout_s = default_timeout_s
        self._default_retries = default_retries
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._auth_cache = AuthCache(clock)

    # -- stages -----------------------------------------------------------------------------------
    async def authenticate(self, hook: Hook, event: Event, refresh: bool = False) -> dict[str, str]:
        auth = hook.auth
        if auth is None:
            return {}
        if not refresh:
            cached = self._auth_cache.get(hook.id)
            if cached is not None:
                return cached
        request = build_auth_request(auth, event)
        body = None
        headers = dict(request.headers)
        if request.json_body is not None:
            body = json.dumps(request.json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        result = await self._sender.send(
            request.method,
            request.url,
            headers,
            body,
            min(AUTH_TIMEOUT_S, hook.timeout_s(self._default_timeout_s)),
            params=request.query or None,
            max_body_bytes=AUTH_MAX_RESPONSE_BYTES,
            pool=hook.domain,
        )
        if result.status is None or not 200 <= result.status < 300:
            # Refused by the egress guard is final, as for the main request: a retry would be refused again.
            raise AuthFailed(f"auth pre-request failed: {result.error or f'HTTP {result.status}'}", result.terminal)
        values = auth_values(
            result.headers, result.body, result.header("Content-Type") or "", auth.get("cookie") is True
        )
        ttl = auth.get("ttl")
        if isinstance(ttl, int | float):
            self._auth_cache.put(hook.id, float(ttl), values)
        return values

    def render(
        self,
        hook: Hook,
        event: Event,
        key: str,
        message_id: str,
        auth: dict[str, str],
        call_id: str | None = None,
        call_seq: int | None = None,
    ) -> RenderedRequest:
        action = hook.doc.get("action") or {}
        request = build_request(
            method=str(action.get("method", "POST")),
            url=str(action.get("url", "")),
            event_key=key,
            message_id=message_id,
            event=event,
            auth_values=auth,
            header_templates=hook.doc.get("headers") or {},
            fields=hook.doc.get("fields") or [],
            renames=hook.doc.get("map") or {},
            custom_body=hook.doc.get("customBody") is True,
            raw_body=hook.doc.get("rawBody"),
            dumps=orjson.dumps,
            call_id=call_id,
        )
        if call_seq is not None:
            headers = request.headers
            for name in [k for k in headers if k.lower() == "x-call-sequence"]:  # rare: a hook that sets it itself
                del headers[name]
            headers[CALL_SEQUENCE_HEADER] = str(call_seq)
        if hook.signing_key is not None:
            signed = signature_headers(hook.signing_key, message_id, int(self._clock()), request.body or b"")
            request.headers.update(signed)
        return request

    async def send(self, hook: Hook, request: RenderedRequest) -> HttpResult:
        return await self._sender.send(
            request.method,
            request.url,
            request.headers,
            request.body,
            hook.timeout_s(self._default_timeout_s),
            pool=hook.domain,
        )

    def classify(self, hook: Hook, job: Job, result: HttpResult) -> Outcome:
        return decide(
            status=result.status,
            error=result.error,
            terminal_error=result.terminal,
            retry_after=result.header("Retry-After"),
            attempts_done=job.attempts + 1,
            max_attempts=hook.max_attempts(self._default_retries),
            delay_s=hook.delay_s,
            expires_at=job.expires_at,
            now=self._clock(),
            jitter_unit=self._rng.random(),
            disable_on_gone=hook.disable_on_gone,
        )

    # -- the whole attempt ------------------------------------------------------------------------
    async def attempt(self, job: Job) -> AttemptReport:
        """Run one attempt of `job` through every stage and say what to record."""
        hook, started = job.hook, self._clock()
        if job.expires_at is not None and started >= job.expires_at:
            return self._report(job, started, GiveUp("ttl expired before the attempt", expired=True), None, None, False)
        try:
            auth = await self.authenticate(hook, job.event) if hook.auth is not None else {}
            request = self.render(hook, job.event, job.event_key, job.delivery_id, auth, job.call_id, job.call_seq)
            result = await self.send(hook, request)
            if result.status == 401 and auth and self._auth_cache.get(hook.id) is not None:
                self._auth_cache.drop(hook.id)  # stale credentials: refresh once (docs/behaviour.md, "Delivery")
                auth = await self.authenticate(hook, job.event, refresh=True)
                request = self.render(hook, job.event, job.event_key, job.delivery_id, auth, job.call_id, job.call_seq)
                result = await self.send(hook, request)
        except AuthFailed as exc:
            result, request = HttpResult(None, error=str(exc), terminal=exc.terminal), None
        except Exception as exc:  # a bug or an unbuildable request: recorded and given up, never left leased
            logger.exception("delivery attempt failed inside switchhook", extra={"delivery_id": job.delivery_id})
            result = HttpResult(None, error=f"internal error: {type(exc).__name__}", terminal=True)
            request = None
        outcome = self.classify(hook, job, result)
        return self._report(job, started, outcome, request, result, True)

    def _report(
        self,
        job: Job,
        started: float,
        outcome: Outcome,
        request: RenderedRequest | None,
        result: HttpResult | None,
        attempted: bool,
    ) -> AttemptReport:
        attempts = job.attempts + (1 if attempted else 0)
        if isinstance(outcome, Delivered):
            status, next_at, error = "delivered", self._clock(), None
        elif isinstance(outcome, Retry):
            status, next_at, error = "pending", outcome.at, outcome.reason
        else:
            status = "expired" if outcome.expired else "failed"
            next_at, error = self._clock(), outcome.reason
        attempt = None
        if attempted and result is not None:
            attempt = AttemptRow(
                job.delivery_id,
                attempts,
                started,
                result.duration_ms,
                result.status,
                result.error,
                result.body.decode("utf-8", "replace") if result.body else None,
            )
        finish = Finish(job.delivery_id, status, attempts, next_at, result.status if result else None, error, attempt)
        return AttemptReport(finish, outcome, request, result)

    # -- dry run (docs/behaviour.md) ----------------------------------------------------------------------
    def preview(self, hook: Hook, event: Event, key: str, message_id: str) -> dict[str, Any]:
        """What would be sent, without sending (auth pre-request values are left empty)."""
        request = self.render(hook, event, key, message_id, {})
        return request_view(request)

    async def send_test(self, hook: Hook, event: Event, key: str, message_id: str) -> dict[str, Any]:
        """Send one request now, outside the delivery log, and report the response."""
        return await _send_test(self, hook, event, key, message_id)


def request_view(request: RenderedRequest) -> dict[str, Any]:
    """The request as the dry run shows it: credential-like header values masked, like hook reads."""
    body = request.body.decode("utf-8", "replace") if request.body is not None else None
    shown = redact({"headers": request.headers, "action": {"url": request.url}})
    return {
        "method": request.method,
        "url": shown["action"]["url"],
        "headers": shown["headers"],
        "body": body,
        "notes": request.notes,
    }


async def _send_test(pipeline: DeliveryPipeline, hook: Hook, event: Event, key: str, message_id: str) -> dict[str, Any]:
    try:
        auth = await pipeline.authenticate(hook, event, refresh=True)
    except AuthFailed as exc:
        return {"error": str(exc)}
    request = pipeline.render(hook, event, key, message_id, auth)
    result = await pipeline.send(hook, request)
    return {
        "status": result.status,
        "error": result.error,
        "durationMs": round(result.duration_ms, 3),
        "headers": dict(result.headers),
        "body": result.body.decode("utf-8", "replace"),
    }
