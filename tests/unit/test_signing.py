"""Standard Webhooks signing (docs/behaviour.md): secret format, sign/verify, and the public verifier agrees."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from switchhook.core.errors import InvalidHook
from switchhook.core.signing import SECRET_PREFIX, secret_key, sign, signature_headers, verify

# The example secret of the Standard Webhooks specification / Svix docs.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_KEY = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
MESSAGE_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
BODY = json.dumps({"id": MESSAGE_ID, "action": "CHANNEL_CREATE", "data": {"Caller": 'Ünï "x"'}}).encode()


def new_secret(size: int = 24) -> str:
    return SECRET_PREFIX + base64.b64encode(bytes(range(size))).decode()


# --- secret_key ----------------------------------------------------------------------------------


def test_secret_key_decodes_the_base64_after_the_prefix() -> None:
    assert secret_key(SPEC_SECRET) == SPEC_KEY
    assert len(SPEC_KEY) == 24
    assert secret_key(new_secret(32)) == bytes(range(32))
    assert secret_key(new_secret(64)) == bytes(range(64))


def test_secret_key_accepts_unpadded_base64_like_the_libraries() -> None:
    padded = new_secret(16)
    assert padded.endswith("==")
    assert secret_key(padded.rstrip("=")) == bytes(range(16))
    assert secret_key(padded.rstrip("=")) == secret_key(padded)


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix
        "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # prefix is case-sensitive
        "whsec-MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_",
        "whsec_not base64!",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaL",  # 29 characters: no base64 has that length
        "whsec_MfKQ9r8GKYqrTwjUPD8I LPZIo2LaLaSw",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
        "whsec_********",
    ],
)
def test_malformed_secrets_are_rejected(secret: str) -> None:
    with pytest.raises(InvalidHook) as raised:
        secret_key(secret)
    assert raised.value.message.startswith("Bad request: secret")


@pytest.mark.parametrize("size", [0, 1, 8, 15])
def test_short_keys_are_rejected(size: int) -> None:
    with pytest.raises(InvalidHook, match="16 bytes"):
        secret_key(new_secret(size) if size else "whsec_")


def test_sixteen_bytes_is_enough() -> None:
    assert secret_key(new_secret(16)) == bytes(range(16))


@pytest.mark.parametrize("secret", [None, 123, b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
def test_non_string_secret_is_rejected(secret: object) -> None:
    with pytest.raises(InvalidHook):
        secret_key(secret)  # type: ignore[arg-type]


# --- sign / verify -------------------------------------------------------------------------------


def test_sign_is_hmac_sha256_of_id_timestamp_body() -> None:
    expected = hmac.new(SPEC_KEY, f"{MESSAGE_ID}.1614265330.".encode() + BODY, hashlib.sha256).digest()
    assert sign(SPEC_KEY, MESSAGE_ID, 1614265330, BODY) == "v1," + base64.b64encode(expected).decode()


def test_sign_matches_the_standard_webhooks_spec_example() -> None:
    # Example from the Standard Webhooks specification (and the svix libraries' tests).
    body = b'{"test": 2432232314}'
    assert sign(SPEC_KEY, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_sign_verify_round_trip() -> None:
    signature = sign(SPEC_KEY, MESSAGE_ID, 1_750_000_000, BODY)
    assert verify(SPEC_KEY, MESSAGE_ID, 1_750_000_000, BODY, signature) is True


@pytest.mark.parametrize(
    ("key", "message_id", "timestamp_s", "body"),
    [
        (bytes(range(24)), MESSAGE_ID, 1_750_000_000, BODY),
        (SPEC_KEY, MESSAGE_ID + "x", 1_750_000_000, BODY),
        (SPEC_KEY, MESSAGE_ID, 1_750_000_001, BODY),
        (SPEC_KEY, MESSAGE_ID, 1_750_000_000, BODY + b" "),
        (SPEC_KEY, MESSAGE_ID, 1_750_000_000, b""),
    ],
)
def test_verify_rejects_any_change(key: bytes, message_id: str, timestamp_s: int, body: bytes) -> None:
    signature = sign(SPEC_KEY, MESSAGE_ID, 1_750_000_000, BODY)
    assert verify(key, message_id, timestamp_s, body, signature) is False


def test_verify_accepts_one_of_several_signatures() -> None:
    good = sign(SPEC_KEY, MESSAGE_ID, 1_750_000_000, BODY)
    other = sign(bytes(range(24)), MESSAGE_ID, 1_750_000_000, BODY)
    assert verify(SPEC_KEY, MESSAGE_ID, 1_750_000_000, BODY, f"{other} {good}") is True
    assert verify(SPEC_KEY, MESSAGE_ID, 1_750_000_000, BODY, other) is False
    assert verify(SPEC_KEY, MESSAGE_ID, 1_750_000_000, BODY, "") is False
    assert verify(SPEC_KEY, MESSAGE_ID, 1_750_000_000, BODY, "v1,garbage") is False
    assert verify(SPEC_KEY, MESSAGE_ID, 1_750_000_000, BODY, good.removeprefix("v1,")) is False


def test_signature_headers() -> None:
    headers = signature_headers(SPEC_KEY, MESSAGE_ID, 1_750_000_000, BODY)
    assert headers == {
        "webhook-id": MESSAGE_ID,
        "webhook-timestamp": "1750000000",
        "webhook-signature": sign(SPEC_KEY, MESSAGE_ID, 1_750_000_000, BODY),
    }
    assert headers["webhook-signature"].startswith("v1,")
    base64.b64decode(headers["webhook-signature"][3:], validate=True)


# --- the public standardwebhooks verifier ---------------------------------------------------------


@pytest.mark.parametrize("secret", [SPEC_SECRET, new_secret(32), new_secret(16), new_secret(16).rstrip("=")])
def test_standardwebhooks_library_verifies_our_headers(secret: str) -> None:
    now = int(time.time())
    headers = signature_headers(secret_key(secret), MESSAGE_ID, now, BODY)
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    # Header names are case-insensitive for receivers.
    assert Webhook(secret).verify(BODY, {k.title(): v for k, v in headers.items()}) == json.loads(BODY)


def test_standardwebhooks_library_rejects_a_tampered_body() -> None:
    now = int(time.time())
    headers = signature_headers(secret_key(SPEC_SECRET), MESSAGE_ID, now, BODY)
    tampered = BODY.replace(b"CHANNEL_CREATE", b"CHANNEL_HANGUP")
    with pytest.raises(WebhookVerificationError):
        Webhook(SPEC_SECRET).verify(tampered, headers)


def test_standardwebhooks_library_rejects_another_secret_or_id() -> None:
    now = int(time.time())
    headers = signature_headers(secret_key(SPEC_SECRET), MESSAGE_ID, now, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret(24)).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SPEC_SECRET).verify(BODY, {**headers, "webhook-id": "msg_other"})


def test_standardwebhooks_library_rejects_a_stale_timestamp() -> None:
    stale = int(time.time()) - 3600
    headers = signature_headers(secret_key(SPEC_SECRET), MESSAGE_ID, stale, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(SPEC_SECRET).verify(BODY, headers)


def test_library_signature_verifies_with_ours() -> None:
    now = int(time.time())
    theirs = Webhook(SPEC_SECRET).sign(MESSAGE_ID, datetime.fromtimestamp(now, UTC), BODY.decode())
    assert verify(secret_key(SPEC_SECRET), MESSAGE_ID, now, BODY, theirs) is True
