"""Standard Webhooks signing (docs/behaviour.md, "Delivery"): `webhook-id`, `webhook-timestamp`, `webhook-signature`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from switchhook.core.errors import InvalidHook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format prefix, not a secret


def secret_key(secret: str) -> bytes:
    """Decode `whsec_<base64>` into the HMAC key; raises InvalidHook when malformed."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise InvalidHook("Bad request: secret must look like whsec_<base64>.")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        # Padding is optional, as in the standardwebhooks libraries (they append "==" before decoding).
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidHook("Bad request: secret must look like whsec_<base64>.") from None
    if len(key) < 16:
        raise InvalidHook("Bad request: secret must hold at least 16 bytes of key.")
    return key


def sign(key: bytes, message_id: str, timestamp_s: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of id.timestamp.body>`."""
    to_sign = f"{message_id}.{timestamp_s}.".encode() + body
    digest = hmac.new(key, to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(key: bytes, message_id: str, timestamp_s: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": sign(key, message_id, timestamp_s, body),
    }


def verify(key: bytes, message_id: str, timestamp_s: int, body: bytes, header: str) -> bool:
    """Constant-time check of any `v1,` signature in a space-separated header."""
    expected = sign(key, message_id, timestamp_s, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in header.split())
