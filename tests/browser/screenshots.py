"""Regenerate docs/screenshots/ (the console's main screens): `.venv/bin/python -m tests.browser.screenshots`.

Runs the same real server, receiver and guarded Chromium as the browser tests, arranges a small domain through
the API (hooks, delivered and failed deliveries, a call), then photographs each screen through the page.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.browser.harness import World, guarded_page, launch, log_in, world

OUT = Path(__file__).parents[2] / "docs" / "screenshots"
LAPTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 1, "has_touch": True}
CALL = "6f3c2a0e-8b1d-4c59-9f2e-2d7c1b0a9e41"


def arrange(w: World) -> str:
    """Three hooks of domain A, one failing; a call of three events delivered to two of them."""
    headers = w.admin_headers(w.domain_a)
    base = "/api/v2/hooks"

    def hook(doc: dict[str, Any]) -> str:
        response = w.server.request("POST", base, json=doc, headers=headers)
        assert response.status_code == 200, response.text
        hook_id: str = response.json()["data"]["insertedIds"][0]
        return hook_id

    crm = hook(
        {
            "event": ["CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"],
            "enable": True,
            "description": "CRM call records",
            "action": {"type": "web", "method": "POST", "url": w.receiver.url},
            "filter": {"Call-Direction": {"operation": "==", "value": "inbound"}},
            "fields": ["Channel-Call-UUID", "Hangup-Cause", "variable_billsec"],
            "map": {"variable_billsec": "billsec"},
            "retries": 0,
        }
    )
    hook(
        {
            "event": "CUSTOM->callcenter::info",
            "enable": True,
            "description": "Wallboard",
            "action": {"type": "web", "method": "POST", "url": w.receiver.url.replace("/hook", "/wallboard")},
        }
    )
    hook(
        {
            "event": "CHANNEL_CREATE",
            "enable": False,
            "description": "Old integration",
            "action": {"type": "web", "method": "PUT", "url": "https://legacy.example.com/events"},
        }
    )
    events = [
        {
            "Event-Name": name,
            "Channel-Call-UUID": CALL,
            "Call-Direction": "inbound",
            "Event-Sequence": str(n),
            "Core-UUID": "screenshots",
            "Hangup-Cause": "NORMAL_CLEARING",
            "variable_billsec": "42",
            "variable_domain_name": w.domain_a,
        }
        for n, name in enumerate(["CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"], 1)
    ]
    for event in events:
        w.server.request("POST", "/api/v2/events", json=event, headers=headers)
    w.receiver.wait_for(2)
    w.receiver.status = 500
    failing = {**events[1], "Event-Sequence": "3", "Channel-Call-UUID": CALL}
    w.server.request("POST", "/api/v2/events", json=failing, headers=headers)
    w.receiver.wait_for(3)
    w.receiver.status = 200
    return crm


def shoot(browser: Any, w: World, out: Path, crm: str) -> list[Path]:
    made: list[Path] = []

    def snap(page: Any, name: str, full: bool = False) -> None:
        page.wait_for_load_state("networkidle")
        path = out / f"{name}.png"
        page.screenshot(path=str(path), full_page=full)
        made.append(path)

    for scheme, suffix in (("light", ""), ("dark", "-dark")):
        with guarded_page(browser, w.url, color_scheme=scheme, **LAPTOP) as (page, guard):
            log_in(page, f"admin@{w.domain_a}")
            page.locator(f'tr[data-hook="{crm}"]', has_text="%").wait_for()
            snap(page, f"hooks{suffix}")
            if suffix:
                guard.check()
                continue
            page.goto(f"/console/#/hooks/{crm}")
            page.locator("#filter-rows input").first.wait_for()
            snap(page, "editor", full=True)
            page.goto(f"/console/#/hooks/{crm}/try")
            page.get_by_label("Event", exact=True).select_option("sample:CHANNEL_HANGUP_COMPLETE")
            page.get_by_role("button", name="Dry run").click()
            page.locator("#verdict").wait_for()
            snap(page, "try-it", full=True)
            page.goto(f"/console/#/hooks/{crm}/deliveries")
            page.locator("#delivery-log tr[data-delivery]").first.wait_for()
            snap(page, "deliveries")
            page.locator('#delivery-log tr[data-status="failed"]').get_by_role("link", name="Attempts").click()
            page.locator("table.attempts").wait_for()
            snap(page, "delivery")
            page.goto(f"/console/#/calls/{CALL}")
            page.locator("#call-deliveries tr[data-delivery]").first.wait_for()
            snap(page, "calls")
            guard.check()
    with guarded_page(browser, w.url, **PHONE) as (page, guard):
        log_in(page, f"admin@{w.domain_a}")
        page.locator(f'tr[data-hook="{crm}"]').wait_for()
        snap(page, "hooks-phone")
        guard.check()
    return made


def main() -> None:
    from playwright.sync_api import sync_playwright

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data, world(Path(data)) as w, sync_playwright() as playwright:
        crm = arrange(w)
        browser = launch(playwright)
        try:
            for path in shoot(browser, w, out, crm):
                print(f"{path} {path.stat().st_size} bytes")
        finally:
            browser.close()


if __name__ == "__main__":
    main()
