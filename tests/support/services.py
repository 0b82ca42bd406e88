"""The real backing services tests use: their URLs from env, and skip (or fail under CI) when one is down."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time
from typing import Any, NoReturn
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


def need_rabbitmqctl() -> None:
    """Tests that restart the broker need its CLI; like a missing service, its absence fails under CI."""
    if shutil.which("rabbitmqctl") is None:
        _service_down("rabbitmqctl", "not installed here")


async def rabbitmqctl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, f"rabbitmqctl {' '.join(args)}: {stderr.decode()}"
    return stdout.decode()


async def wait_until_broker_answers(url: str, timeout_s: float = 30.0) -> Any:
    """A fresh aio-pika connection once RabbitMQ accepts one again (after a restart)."""
    import aio_pika

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await aio_pika.connect(url, timeout=2)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
