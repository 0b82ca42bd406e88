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

from switchhook.core.breaker import Breakers, Change, Health, health_of
from switchhook.core.events import Event
from switchhook.core.failover import PAUSED, PrimaryCircuits, Route, failover_reason
from switchhook.core.hooks import Hook
from switchhook.core.redact import mask_url, redact
from switchhook.core.render import RenderedRequest, auth_values, build_auth_request, build_request
from switchhook.core.retry import Delivered, GiveUp, Outcome, Retry, decide
from switchhook.core.signing import signature_headers
from switchhook.delivery.sender import HttpResult, Sender
from switchhook.services.events import Job
from switchhook.store.base import AttemptLeg, AttemptRow, Finish

AUTH_TIMEOUT_S = 10.0
#: The auth response is read whole (a 4.6 KB OIDC token reply lost every `auth:body:*` value at 4 KiB), up to this.
AUTH_MAX_RESPONSE_BYTES = 1024 * 1024
logger = logging.getLogger("switchhook.delivery")
#: An ordered hook's requests number the call's deliveries, 1, 2, 3 ... in sending order (docs/calls.md); a retry
#: keeps its number. switchhook's own, like X-Call-Id: a hook header of that name is replaced.
CALL_SEQUENCE_HEADER = "X-Call-Sequence"
#: On a request to a hook's fallback URL (docs/fallback.md): the primary URL (password masked, as hook reads show
#: it) and why the fallback was sent (core/failover.py). switchhook's own: a hook header of either name is replaced.
ORIGINAL_URL_HEADER = "X-Original-Url"
FAILOVER_REASON_HEADER = "X-Failover-Reason"
_FAILOVER_HEADERS = frozenset((ORIGINAL_URL_HEADER.lower(), FAILOVER_REASON_HEADER.lower()))


@dataclass(slots=True)
class AttemptReport:
    """The result of one attempt: what to record, and whether the hook must be disabled."""

    finish: Finish
    outcome: Outcome | None
    request: RenderedRequest | None
    #: The last request's result: the fallback's when it was sent (the worker's circuit measures it).
    response: HttpResult | None
    #: A hook with a fallback URL: its requests when the fallback was sent (primary and fallback, or the fallback
    #: alone while the primary is paused); empty when the primary alone was sent.
    legs: tuple[AttemptLeg, ...] = ()
    #: The primary URL's circuit paused (OPENED) or resumed (CLOSED) with this attempt (core/failover.py).
    primary_change: Change | None = None

    @property
    def fallback_used(self) -> bool:
        """Whether this attempt sent a request to the hook's fallback URL."""
        return bool(self.legs) and self.legs[-1].leg == "fallback"

    @property
    def failover_reason(self) -> str | None:
        """Why the fallback was sent (its X-Failover-Reason: `timeout`, `http 503`, `paused` ...), if it was."""
        return self.legs[-1].reason if self.fallback_used else None


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
        primary_breakers: Breakers | None = None,
    ) -> None:
        """`primary_breakers`: the circuits of fallback hooks' primary URLs (SWITCHHOOK_BREAKER_*, as the
        worker's); none: a primary is never paused, every attempt tries it first."""
        self._sender = sender
        self._primaries = PrimaryCircuits(primary_breakers or Breakers(0, 0.0, 0.0))
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
        url: str | None = None,
    ) -> RenderedRequest:
        """The request of `hook` for `event`, to its `action.url` (or `url`: its fallback's)."""
        action = hook.doc.get("action") or {}
        request = build_request(
            method=str(action.get("method", "POST")),
            url=url if url is not None else str(action.get("url", "")),
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
        if hook.fallback_url is not None:
            return await self._attempt_with_fallback(job, started, hook.fallback_url)
        request, result, _ = await self._request(job, send=True)
        assert result is not None  # sent
        outcome = self.classify(hook, job, result)
        return self._report(job, started, outcome, request, result, True)

    async def _request(self, job: Job, send: bool) -> tuple[RenderedRequest | None, HttpResult | None, dict[str, str]]:
        """auth -> render -> (`send`) send, refreshing stale credentials once: the request (None: none could be
        built), its result (a failure when none could be built; None when not `send`) and the auth values."""
        hook = job.hook
        auth: dict[str, str] = {}
        try:
            auth = await self.authenticate(hook, job.event) if hook.auth is not None else {}
            request = self.render(hook, job.event, job.event_key, job.delivery_id, auth, job.call_id, job.call_seq)
            if not send:
                return request, None, auth
            result = await self.send(hook, request)
            if result.status == 401 and auth and self._auth_cache.get(hook.id) is not None:
                self._auth_cache.drop(hook.id)  # stale credentials: refresh once (docs/behaviour.md, "Delivery")
                auth = await self.authenticate(hook, job.event, refresh=True)
                request = self.render(hook, job.event, job.event_key, job.delivery_id, auth, job.call_id, job.call_seq)
                result = await self.send(hook, request)
            return request, result, auth
        except AuthFailed as exc:
            return None, HttpResult(None, error=str(exc), terminal=exc.terminal), auth
        except Exception as exc:  # a bug or an unbuildable request: recorded and given up, never left leased
            logger.exception("delivery attempt failed inside switchhook", extra={"delivery_id": job.delivery_id})
            return None, HttpResult(None, error=f"internal error: {type(exc).__name__}", terminal=True), auth

    async def _attempt_with_fallback(self, job: Job, started: float, fallback_url: str) -> AttemptReport:
        """The failover stage (core/failover.py): the primary (unless paused), then on no answer or a 5xx the
        fallback, with the same request. The fallback's 2xx delivers; otherwise the primary's failure decides the
        retry (a fallback's answer never fails a delivery for good nor disables the hook). Bounded by two request
        timeouts (the hook's `timeout` each) after the auth pre-request."""
        hook = job.hook
        route = self._primaries.route(hook.id, job.delivery_id, started)
        primary_health = Health.UNKNOWN
        legs: list[AttemptLeg] = []
        fallback: HttpResult | None = None
        try:
            request, primary, auth = await self._request(job, send=route is Route.PRIMARY)
            if request is not None and primary is not None:
                primary_health = health_of(primary.status, primary.terminal)
                legs.append(_leg("primary", request.url, primary))
            reason = PAUSED if primary is None else failover_reason(primary.status, primary.terminal, primary.no_answer)
            if request is not None and reason is not None:
                fallback = await self._send_fallback(job, request, auth, fallback_url, reason)
                legs.append(_leg("fallback", fallback_url, fallback, reason))
        finally:  # a probe of the primary is over whatever happened (core/failover.py)
            change = self._primaries.finished(hook.id, job.delivery_id, primary_health, self._clock(), started)
        if change is not None:
            pause_s = (self._primaries.breakers.reopens_at(hook.id) or 0.0) - self._clock()
            _log_primary_change(job, change, primary, pause_s)
        if fallback is None:  # the primary alone: an answer, a refusal, or nothing could be built
            assert primary is not None  # sent, or the failure says why not
            report = self._report(job, started, self.classify(hook, job, primary), request, primary, True)
            report.legs, report.primary_change = (), change
            return report
        if fallback.status is not None and 200 <= fallback.status < 300:
            deciding, note = fallback, None
        else:
            note = "fallback: " + (f"HTTP {fallback.status}" if fallback.status is not None else str(fallback.error))
            deciding = primary if primary is not None else HttpResult(None, error="primary paused")
        outcome = self.classify(hook, job, deciding)
        report = self._report(job, started, outcome, request, deciding, True, tuple(legs), note)
        report.response, report.primary_change = fallback, change
        return report

    async def _send_fallback(
        self, job: Job, request: RenderedRequest, auth: dict[str, str], fallback_url: str, reason: str
    ) -> HttpResult:
        """The primary's request (method, body, headers, signature) to the fallback URL, with X-Original-Url and
        X-Failover-Reason; a GET's query is rendered onto the fallback URL (never the primary URL's own)."""
        hook = job.hook
        url = fallback_url
        if request.method == "GET":
            try:
                url = self.render(
                    hook, job.event, job.event_key, job.delivery_id, auth, job.call_id, job.call_seq, url=fallback_url
                ).url
            except Exception as exc:  # it rendered for the primary: a bug, recorded as the fallback's failure
                logger.exception("rendering a fallback request failed", extra={"delivery_id": job.delivery_id})
                return HttpResult(None, error=f"internal error: {type(exc).__name__}", terminal=True)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _FAILOVER_HEADERS}
        headers[ORIGINAL_URL_HEADER] = mask_url(str((hook.doc.get("action") or {}).get("url", "")))
        headers[FAILOVER_REASON_HEADER] = reason
        return await self._sender.send(
            request.method, url, headers, request.body, hook.timeout_s(self._default_timeout_s), pool=hook.domain
        )

    def _report(
        self,
        job: Job,
        started: float,
        outcome: Outcome,
        request: RenderedRequest | None,
        result: HttpResult | None,
        attempted: bool,
        legs: tuple[AttemptLeg, ...] = (),
        note: str | None = None,
    ) -> AttemptReport:
        """What to record of an attempt whose `result` decided `outcome` (`note`: said after its reason)."""
        attempts = job.attempts + (1 if attempted else 0)
        if isinstance(outcome, Delivered):
            status, next_at, error = "delivered", self._clock(), None
        elif isinstance(outcome, Retry):
            status, next_at, error = "pending", outcome.at, outcome.reason
        else:
            status = "expired" if outcome.expired else "failed"
            next_at, error = self._clock(), outcome.reason
        if note is not None:
            error = f"{error}; {note}" if error else note
        attempt = None
        if attempted and result is not None:
            attempt = AttemptRow(
                job.delivery_id,
                attempts,
                started,
                sum(leg.duration_ms for leg in legs) if legs else result.duration_ms,
                result.status,
                error if legs else result.error,
                result.body.decode("utf-8", "replace") if result.body else None,
                legs,
            )
        finish = Finish(job.delivery_id, status, attempts, next_at, result.status if result else None, error, attempt)
        return AttemptReport(finish, outcome, request, result, legs)

    # -- dry run (docs/behaviour.md) ----------------------------------------------------------------------
    def preview(self, hook: Hook, event: Event, key: str, message_id: str) -> dict[str, Any]:
        """What would be sent, without sending (auth pre-request values are left empty)."""
        request = self.render(hook, event, key, message_id, {})
        return request_view(request)

    async def send_test(self, hook: Hook, event: Event, key: str, message_id: str) -> dict[str, Any]:
        """Send one request now, outside the delivery log, and report the response."""
        return await _send_test(self, hook, event, key, message_id)


def _leg(name: str, url: str, result: HttpResult, reason: str | None = None) -> AttemptLeg:
    return AttemptLeg(name, mask_url(url), result.status, round(result.duration_ms, 3), result.error, reason)


def _log_primary_change(job: Job, change: Change, primary: HttpResult | None, pause_s: float) -> None:
    hook = job.hook
    extra = {"hook_id": hook.id, "domain": hook.domain}
    if change is Change.CLOSED:
        logger.info("hook %s: primary URL answers again; deliveries go to it first", hook.id, extra=extra)
        return
    why = (primary.error or f"HTTP {primary.status}") if primary is not None else "unknown"
    logger.warning(
        "hook %s: primary URL down (%s); deliveries go straight to the fallback URL for %.0f s, then one probes it",
        hook.id,
        why,
        max(0.0, pause_s),
        extra=extra,
    )


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
