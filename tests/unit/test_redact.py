"""Masked secrets: shown as ********, kept on a round trip, never carried to another destination."""

from __future__ import annotations

import pytest

from switchhook.core.errors import InvalidHook
from switchhook.core.hooks import validate_hook
from switchhook.core.redact import MASK, redact

STORED = {
    "event": "E",
    "action": {"type": "web", "method": "POST", "url": "https://crm.example/hook"},
    "headers": {"Authorization": "Bearer real-token", "X-Trace": "${Unique-ID}"},
    "auth": {"enabled": True, "url": "https://auth.example/login", "map": {"password": "real-password"}},
}


def test_reads_mask_credentials_but_not_templates() -> None:
    shown = redact(STORED)
    assert shown["headers"] == {"Authorization": MASK, "X-Trace": "${Unique-ID}"}
    assert shown["auth"]["map"] == {"password": MASK}


def test_a_round_trip_to_the_same_destination_keeps_the_stored_values() -> None:
    doc = validate_hook(redact(STORED), previous=STORED)
    assert doc["headers"]["Authorization"] == "Bearer real-token"
    assert doc["auth"]["map"]["password"] == "real-password"


@pytest.mark.parametrize(
    ("section", "url"),
    [
        ("action", "https://attacker.example/hook"),
        ("action", "https://crm.example:8443/hook"),
        ("auth", "https://attacker.example/login"),
    ],
)
def test_a_masked_value_never_follows_a_new_destination(section: str, url: str) -> None:
    moved = redact(STORED)
    moved[section] = {**moved[section], "url": url}
    with pytest.raises(InvalidHook, match="send the real value"):
        validate_hook(moved, previous=STORED)


@pytest.mark.parametrize(
    "action",
    [
        {"url": "https://attacker.example/hook"},
        {"fallbackUrl": "https://attacker.example/standby"},
    ],
)
def test_masked_auth_credentials_never_follow_a_new_action_destination(action: dict[str, str]) -> None:
    """The auth pre-request's token is sent to action.url and action.fallbackUrl: a hook editor who cannot read
    the stored credentials must not point either elsewhere and have tokens made with them sent there."""
    stored = {key: value for key, value in STORED.items() if key != "headers"}  # only auth holds credentials
    moved = redact(stored)
    moved["action"] = {**moved["action"], **action}
    with pytest.raises(InvalidHook, match=r"auth\.map 'password'"):
        validate_hook(moved, previous=stored)
