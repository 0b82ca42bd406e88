"""Issue 13, item 2: a 19-byte regex was a memory bomb, at write time and again at every start.

`(?:a{1500}){1500}` took the server from 72 to 627 MB (the `regex` package unrolls fixed repetitions into a
2.25 M character program) and every start compiled it again. Now a pattern is bounded before it is compiled
(length, repetition count, expanded size), and a stored pattern over today's bounds is skipped at start and
its hook disabled with the reason. Measured on a real server process: its peak RSS (VmHWM) and another
domain's deliveries.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tests.support.process import ServerProcess, domain_token_async
from tests.support.receiver import Receiver

BOMB = "(?:a{1500}){1500}"  # 19 bytes
#: Every count within bounds, but 1,000,000 units expanded (~250 MB compiled).
WIDE = "(?:a{1000}){1000}"
#: What an older version may have stored: 300,000 units (~75 MB compiled, ~1 s of CPU at every start).
STORED = "(?:a{1000}){300}"
MB = 1024 * 1024


def peak_rss(server: ServerProcess) -> int:
    """The process's high-water resident set, bytes."""
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def hook(url: str, pattern: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"event": "DTMF", "enable": True, "action": {"type": "web", "method": "POST", "url": url}}
    if pattern is not None:
        body["filter"] = {"DTMF-Digit": {"operation": "reg", "value": pattern}}
    return body


async def test_a_regex_bomb_is_refused_at_write_and_a_stored_one_is_disabled_at_start(
    tmp_path: Path, receiver: Receiver
) -> None:
    env = {"SWITCHHOOK_DATA_DIR": str(tmp_path)}
    attacker_token = await domain_token_async(env, "attacker.example")
    other_token = await domain_token_async(env, "other.example")
    attacker, other = {"X-Access-Token": attacker_token}, {"X-Access-Token": other_token}
    server = await ServerProcess(env, tmp_path).start_async()
    try:
        before = peak_rss(server)
        for pattern, reason in ((BOMB, "repeats 1500 times"), (WIDE, "expands to 1000000 units")):
            refused = await server.request_async(
                "POST", "/api/v2/hooks", json=hook(receiver.url(), pattern), headers=attacker
            )
            assert refused.status_code == 400, refused.text
            assert reason in refused.json()["info"]
        assert peak_rss(server) - before < 20 * MB  # the bomb was never compiled
        hook_id = await server.create_hook_async(hook(receiver.url(), "^1$"), attacker)
        await server.create_hook_async(hook(receiver.url("/other")), other)
        await _post(server, other, "1")
        await receiver.wait_for(1, path="/other")
    finally:
        await server.stop_async()

    # An older version stored an over-bound pattern: written straight into the database.
    with sqlite3.connect(tmp_path / "switchhook.db") as db:
        db.execute("UPDATE hooks SET doc = ? WHERE id = ?", (json.dumps(hook(receiver.url(), STORED)), hook_id))

    server = await ServerProcess(env, tmp_path).start_async()
    try:
        assert peak_rss(server) < before + 20 * MB  # the stored pattern was not compiled at start
        read = (await server.request_async("GET", f"/api/v2/hooks/{hook_id}", headers=attacker)).json()["data"]
        assert read["enable"] is False
        assert "expands to 300000 units" in read["disabledReason"]
        await _post(server, other, "2")  # another domain's hooks deliver as before
        await receiver.wait_for(2, path="/other")
        assert server.proc is not None and server.proc.poll() is None
    finally:
        await server.stop_async()


async def _post(server: ServerProcess, headers: dict[str, str], digit: str) -> None:
    event = {"Event-Name": "DTMF", "DTMF-Digit": digit, "variable_domain_name": "other.example"}
    response = await server.request_async("POST", "/api/v2/events", json=event, headers=headers)
    assert response.status_code == 202, response.text
