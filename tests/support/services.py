"""The real backing services tests use: their URLs from env, and skip (or fail under CI) when one is down."""

from __future__ import annotations

import os
import socket
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def _service_down(what: str, detail: str) -> NoReturn:
    message = f"{what} is not reachable ({detail})"
    if os.environ.get("CI") == "true":
        # CI promises the real services: a missing one is a broken run, not a reason to skip.
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


def require_amqp() -> str:
    """The RabbitMQ URL (SWITCHHOOK_TEST_AMQP_URL, else the local one); skip/fail if it does not answer."""
    url = os.environ.get("SWITCHHOOK_TEST_AMQP_URL", DEFAULT_AMQP_URL)
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    try:
        with socket.create_connection((host, port), timeout=2.0):
            pass
    except OSError as exc:
        _service_down(f"RabbitMQ at {host}:{port}", str(exc))
    return url


@pytest.fixture
def amqp_url() -> str:
    """The RabbitMQ URL for this test (see `require_amqp`)."""
    return require_amqp()
