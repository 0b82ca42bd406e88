"""The one error tree of switchhook. Errors carry no HTTP status; `api/errors.py` maps them.

SwitchhookError
├── ValidationFailed      bad input a client can fix (-> 400)
│   ├── InvalidEvent      an event that cannot be decoded or has no Event-Name
│   └── InvalidHook       a hook document that breaks the rules of docs/behaviour.md
├── AuthError             no, bad or expired credentials (-> 401)
├── PermissionDenied      authenticated but not allowed (-> 403)
├── NotFound              addressed resource absent (-> 404)
├── Conflict              resource already exists (-> 409)
├── PayloadTooLarge       request body over the cap (-> 413)
├── RateLimited           ingest over the per-domain rate (-> 429, carries retry_after_s)
└── Unavailable           a dependency (database, broker) is down (-> 503)
"""

from __future__ import annotations


class SwitchhookError(Exception):
    """Root of every error switchhook raises on purpose. `message` is safe to show to the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(SwitchhookError):
    """Input that the caller can fix."""


class InvalidEvent(ValidationFailed):
    """An event that cannot be decoded, or lacks Event-Name."""


class InvalidHook(ValidationFailed):
    """A hook document that breaks the rules of the hook model."""


class AuthError(SwitchhookError):
    """Missing, malformed, revoked or expired credentials."""


class PermissionDenied(SwitchhookError):
    """The caller is known but its role does not allow this."""

    def __init__(self, message: str = "Permission denied!") -> None:
        super().__init__(message)


class NotFound(SwitchhookError):
    """The addressed resource does not exist (for this caller)."""


class Conflict(SwitchhookError):
    """The resource already exists."""


class PayloadTooLarge(SwitchhookError):
    """A request body above the configured cap."""


class RateLimited(SwitchhookError):
    """Too many requests; retry after `retry_after_s` seconds."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(SwitchhookError):
    """A dependency (database, broker) cannot be reached right now."""
