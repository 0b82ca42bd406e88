"""`switchhook listen` and `switchhook send` as a newcomer runs them: real processes, real HTTP, real signatures."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from switchhook.tools.send import post_event, sample_event
from tests.support.process import ServerProcess, domain_token

SECRET = "whsec_" + base64.b64encode(b"listen-test-key-32-bytes-long!!!").decode()
DOMAIN = "tour.example"


class Listener:
    """A running `switchhook listen`: its URL, and its output read line by line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "switchhook", "listen", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        self.first_line = self.proc.stdout.readline()
        self.url = self.first_line.split("listening on ", 1)[1].split(",", 1)[0]

    def read_until(self, marker: str) -> str:
        """Lines up to and including the first one starting with `marker` (the test's timeout bounds the wait)."""
        assert self.proc.stdout is not None
        lines = []
        for line in self.proc.stdout:
            lines.append(line)
            if line.startswith(marker):
                break
        return "".join(lines)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    running = Listener("--secret", SECRET)
    try:
        yield running
    finally:
        running.stop()


def signed(body: bytes, message_id: str = "msg_1") -> dict[str, str]:
    """Headers signed by the standardwebhooks library itself, not by our own signing code."""
    timestamp = datetime.now(tz=UTC)
    signature = Webhook(SECRET).sign(message_id, timestamp, body.decode())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }


def test_listen_prints_each_request_and_checks_its_signature(listener: Listener) -> None:
    body = json.dumps({"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "u-1"}).encode()
    headers = {"Content-Type": "application/json", **signed(body)}

    good = httpx.post(listener.url + "hook?x=1", content=body, headers=headers)
    printed_good = listener.read_until("-> 200")
    tampered = httpx.post(listener.url + "hook", content=body.replace(b"u-1", b"u-2"), headers=headers)
    printed_tampered = listener.read_until("-> 200")
    unsigned = httpx.put(listener.url + "plain", content=b"not json")
    printed_unsigned = listener.read_until("-> 200")

    assert "checking signatures" in listener.first_line
    assert [good.status_code, tampered.status_code, unsigned.status_code] == [200, 200, 200]
    assert "POST /hook?x=1 from 127.0.0.1" in printed_good
    assert "webhook-id: msg_1" in printed_good
    assert '"Event-Name": "CHANNEL_ANSWER"' in printed_good  # pretty JSON, one key a line
    assert "signature: valid" in printed_good
    assert "signature: INVALID (the signature does not match the body with this secret)" in printed_tampered
    assert "PUT /plain" in printed_unsigned and "not json" in printed_unsigned
    assert "signature: INVALID (no webhook-id" in printed_unsigned


def test_listen_binds_loopback_and_never_lets_a_request_drive_the_terminal(listener: Listener) -> None:
    """By default only this machine can reach the receiver; and whatever reaches it is printed with its control
    characters escaped (an escape sequence in a body could retitle the terminal or overwrite earlier lines)."""
    assert listener.url.startswith("http://127.0.0.1:"), listener.first_line
    hostile = "\x1b]0;owned\x07\x1b[2J\rhidden"
    httpx.post(listener.url + "text", content=hostile.encode(), headers={"X-Note": "a\x7fb"})
    printed_text = listener.read_until("-> 200")
    httpx.post(listener.url + "json", json={"Event-Name": "\x9b31m red \x1b[0m"})
    printed_json = listener.read_until("-> 200")

    for printed in (printed_text, printed_json):
        assert not any(c in printed for c in "\x1b\x07\x9b\x7f\r"), repr(printed)
    assert "\\x1b]0;owned\\x07\\x1b[2J\\x0dhidden" in printed_text and "X-Note: a\\x7fb" in printed_text
    assert '"Event-Name": "\\x9b31m red \\u001b[0m"' in printed_json  # JSON escapes C0 itself; C1 is ours


def test_listen_refuses_an_old_timestamp_and_answers_the_status_asked() -> None:
    running = Listener("--secret", SECRET, "--status", "503")
    try:
        body = b"{}"
        headers = signed(body)
        headers["webhook-timestamp"] = str(int(time.time()) - 3600)
        headers["webhook-signature"] = Webhook(SECRET).sign(
            "msg_1", datetime.fromtimestamp(int(time.time()) - 3600, tz=UTC), "{}"
        )
        answer = httpx.post(running.url, content=body, headers=headers)
        printed = running.read_until("-> 503")
    finally:
        running.stop()

    assert answer.status_code == 503
    assert "answering 503" in running.first_line
    assert "signature: INVALID (webhook-timestamp is more than 300 s away from this clock)" in printed


def test_the_tour_send_a_catalogue_sample_and_see_it_signed_at_the_listener(tmp_path: Path, listener: Listener) -> None:
    """The README's tour without the internet: a hook pointed at `switchhook listen`, `switchhook send` posts the
    catalogue's CHANNEL_HANGUP_COMPLETE in the hook's domain, the listener prints it with a valid signature."""
    env = {"SWITCHHOOK_DATA_DIR": str(tmp_path), "SWITCHHOOK_LOG_LEVEL": "WARNING"}
    token = domain_token(env, DOMAIN)
    server = ServerProcess(env, tmp_path).start()
    try:
        hook = {
            "event": "CHANNEL_HANGUP_COMPLETE",
            "enable": True,
            "secret": SECRET,
            "action": {"type": "web", "method": "POST", "url": listener.url + "hook"},
        }
        created = server.request("POST", "/api/v2/hooks", json=hook, headers={"X-Access-Token": token})
        assert created.status_code == 200, created.text
        sent = subprocess.run(
            [
                sys.executable,
                "-m",
                "switchhook",
                "send",
                "CHANNEL_HANGUP_COMPLETE",
                "--domain",
                DOMAIN,
                "--url",
                server.url,
            ],
            env={**os.environ, "SWITCHHOOK_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        printed = listener.read_until("-> ")
        unknown = subprocess.run(
            [
                sys.executable,
                "-m",
                "switchhook",
                "send",
                "CHANNEL_HANGUP_COMPLET",
                "--domain",
                DOMAIN,
                "--token",
                token,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        server.stop()

    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith('202 {"status":"OK","data":{"accepted":1,"deliveries":1'), sent.stdout
    assert "POST /hook" in printed
    assert '"Hangup-Cause": "NORMAL_CLEARING"' in printed
    assert f'"variable_domain_name": "{DOMAIN}"' in printed
    assert "signature: valid" in printed
    assert unknown.returncode == 1
    assert "Did you mean CHANNEL_HANGUP_COMPLETE" in unknown.stderr


@contextmanager
def local_server(status: int, headers: dict[str, str] | None = None) -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server answering every GET and POST with `status` (and `headers`): its URL, and each request it
    got as "path token" (the request's X-Access-Token)."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            seen.append(f"{self.path} {self.headers.get('X-Access-Token')}")
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST = answer

        def log_message(self, format: str, *args: object) -> None:
            return

    running = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=running.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{running.server_address[1]}", seen
    finally:
        running.shutdown()
        running.server_close()


def test_send_goes_straight_to_switchhook_never_through_a_proxy_of_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """urllib would send the request, token and all, to an HTTP proxy named in the environment, even for 127.0.0.1
    when no_proxy is unset; `switchhook send` must reach switchhook directly."""
    with local_server(202) as (switchhook_url, at_switchhook), local_server(202) as (proxy_url, at_proxy):
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
            monkeypatch.setenv(name, proxy_url)
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        event = sample_event("CHANNEL_ANSWER", DOMAIN, ["variable_domain_name"])
        status, _ = post_event(switchhook_url, event, "the-token")
    got = {"switchhook": at_switchhook, "proxy": at_proxy}

    assert status == 202
    assert got == {"switchhook": ["/api/v2/events the-token"], "proxy": []}


def test_send_never_follows_a_redirect_with_its_token() -> None:
    """urllib follows a 302 to a POST as a GET carrying X-Access-Token to the host the Location names; `switchhook
    send` answers the redirect as it is, and the other host gets nothing."""
    with (
        local_server(200) as (elsewhere_url, got),
        local_server(302, {"Location": elsewhere_url + "/collect"}) as (
            redirecting_url,
            _,
        ),
    ):
        event = sample_event("CHANNEL_ANSWER", DOMAIN, ["variable_domain_name"])
        status, _ = post_event(redirecting_url, event, "the-token")

    assert status == 302
    assert got == []
