"""Issue 13, item 1: one domain's regex filters froze the event loop every tenant shares.

200 hooks with `reg` `(a+)+$` and one event of 5,000 `a`s: the accept took 10.2 s and another tenant's POST waited
10.16 s (each match ran to its 50 ms timeout, one after another, on the loop); a dry run of one hook with 300 such
keys froze the server 15 s and wrote 701 log lines. Now matching time is a budget per event and per domain
(docs/behaviour.md, "Regex filters"), `reg` conditions are capped per hook and per domain, and an event that spent
its budget lets the loop serve the others before the next. Measured on a real server process, over HTTP.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.process import ServerProcess, domain_token_async
from tests.support.receiver import Receiver

SLOW = "(a+)+$"  # backtracks exponentially on "aaa…a!": every match runs to its timeout
BOMB_TEXT = "a" * 5000 + "!"
HOOKS = 20  # x 1 slow condition: ~1.1 s of loop per event without the budget
KEYS = 10  # the per-hook cap: the dry-run hook
B_SAMPLES = 100


def web_hook(url: str, conditions: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"event": "DTMF", "enable": True, "action": {"type": "web", "method": "POST", "url": url}}
    if conditions:
        body["filter"] = conditions
    return body


def slow_filter(keys: int) -> dict[str, Any]:
    return {f"Payload-{n}": {"operation": "reg", "value": SLOW} for n in range(keys)}


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def test_a_domains_slow_regexes_hold_neither_another_domains_ingest_nor_its_own_accept(
    tmp_path: Path, receiver: Receiver
) -> None:
    env = {"SWITCHHOOK_DATA_DIR": str(tmp_path), "SWITCHHOOK_REGEX_MAX_PER_DOMAIN": str(HOOKS + KEYS)}
    a_token = await domain_token_async(env, "a.example")
    b_token = await domain_token_async(env, "b.example")
    server = await ServerProcess(env, tmp_path).start_async()
    try:
        async with (
            httpx.AsyncClient(base_url=server.url, headers={"X-Access-Token": a_token}, timeout=60) as a,
            httpx.AsyncClient(base_url=server.url, headers={"X-Access-Token": b_token}, timeout=60) as b,
        ):
            # The caps, at write time: a hook over the per-hook cap, then one past the domain's.
            over = await a.post("/api/v2/hooks", json=web_hook(receiver.url("/a"), slow_filter(KEYS + 1)))
            assert over.status_code == 400, over.text
            assert f"{KEYS + 1} conditions with operation reg, more than the {KEYS}" in over.json()["info"]
            for _ in range(HOOKS):
                created = await a.post("/api/v2/hooks", json=web_hook(receiver.url("/a"), slow_filter(1)))
                assert created.status_code == 200, created.text
            created = await a.post("/api/v2/hooks", json=web_hook(receiver.url("/a"), slow_filter(KEYS)))
            assert created.status_code == 200, created.text
            dry_hook = created.json()["data"]["insertedIds"][0]
            past = await a.post("/api/v2/hooks", json=web_hook(receiver.url("/a"), slow_filter(1)))
            assert past.status_code == 400, past.text
            assert f"more than the {HOOKS + KEYS} a domain may have" in past.json()["info"]
            assert (await b.post("/api/v2/hooks", json=web_hook(receiver.url("/b")))).status_code == 200

            # A posts events its 20 hooks' slow patterns all run on, five per request, while B posts small ones.
            a_event = {"Event-Name": "DTMF", "variable_domain_name": "a.example", "Payload-0": BOMB_TEXT}
            b_event = {"Event-Name": "DTMF", "variable_domain_name": "b.example"}
            a_times: list[float] = []
            b_times: list[float] = []
            done = asyncio.Event()

            async def attack() -> None:
                while not done.is_set():
                    started = time.perf_counter()
                    response = await a.post("/api/v2/events", json=[a_event] * 5)
                    a_times.append(time.perf_counter() - started)
                    assert response.status_code == 202, response.text

            attacker = asyncio.create_task(attack())
            try:
                deadline = time.monotonic() + 30
                while len(b_times) < B_SAMPLES and time.monotonic() < deadline:
                    started = time.perf_counter()
                    response = await b.post("/api/v2/events", json=b_event)
                    b_times.append(time.perf_counter() - started)
                    assert response.status_code == 202, response.text
            finally:
                done.set()
                await attacker
            await receiver.wait_for(len(b_times), path="/b")
            assert receiver.on("/a") == []  # none of A's filters held

            b_p99, a_max = p99(b_times), max(a_times)
            print(f"B p99 {b_p99 * 1000:.0f} ms ({len(b_times)} POSTs); A's slowest {a_max * 1000:.0f} ms")
            assert len(b_times) == B_SAMPLES
            assert b_p99 < 0.25, f"B's p99 {b_p99 * 1000:.0f} ms"  # ~1.1 s per A event without the budget
            assert a_max < 1.0, f"A's slowest accept {a_max * 1000:.0f} ms"  # 5 x 1.1 s without it

            # The dry run of the 10-key hook tries every key: it answers at once and says what it did not evaluate.
            started = time.perf_counter()
            dry = await a.post(
                f"/api/v2/hooks/{dry_hook}/test", json={**a_event, **dict.fromkeys(slow_filter(KEYS), BOMB_TEXT)}
            )
            dry_s = time.perf_counter() - started
            assert dry.status_code == 200, dry.text
            report = dry.json()["data"]
            assert report["filterPasses"] is False
            assert report["filter"] == dict.fromkeys(slow_filter(KEYS), False)
            assert set(report["filterNotEvaluated"]) == set(slow_filter(KEYS))  # 10 x 50 ms without the budget
            assert dry_s < 0.25, f"the dry run took {dry_s * 1000:.0f} ms"

            metrics = (await b.get("/metrics")).text
            cut = re.search(r'switchhook_regex_budget_exhausted_total\{budget="(?:event|domain)"\} (\d+)', metrics)
            assert cut is not None and float(cut.group(1)) > 0, metrics
        log = server.log()
        assert 1 <= log.count("regex filters cut short") <= 2  # once a minute per domain, not once per match
        assert "timed out after" not in log
    finally:
        await server.stop_async()
