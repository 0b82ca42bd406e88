"""The console in a real Chromium against a real switchhook and receiver (issue 15, "Real parts").

Each test walks a flow through the page only (the API is used to arrange what the flow does not create), and every
test ends with `guard.check()`: no request left the server, no console error, no uncaught exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from tests.browser.harness import PASSWORD, Guard, World, guarded_page, log_in, log_in_as_root

Held = TypeVar("Held")

SKELETON = Path(__file__).parents[2] / "src" / "switchhook" / "console" / "static"


def wait_until(page: Any, refresh: Callable[[], None], ready: Callable[[], bool], what: str, tries: int = 150) -> None:
    """Refresh the view until `ready` holds: the server delivers in the background, and the page shows what was
    true when it last asked. Bounded by tries (each a round trip to the server), never by a clock."""
    for _ in range(tries):
        refresh()
        page.wait_for_load_state("networkidle")
        if ready():
            return
    raise AssertionError(f"never saw {what}")


def sample(world: World, key: str) -> dict[str, Any]:
    headers = world.admin_headers(world.domain_a)
    entries = world.server.request("GET", "/api/v2/events/catalogue", headers=headers).json()["data"]
    (entry,) = (e for e in entries if e["key"] == key)
    event: dict[str, Any] = entry["sample"]
    return event


def post_again(world: World, event: dict[str, Any], n: int) -> None:
    """The same event, one Event-Sequence later (the same one again would be a duplicate, stored once)."""
    later = {**event, "Event-Sequence": str(int(event["Event-Sequence"]) + n)}
    posted = world.server.request("POST", "/api/v2/events", json=later, headers=world.admin_headers(world.domain_a))
    assert posted.json()["data"]["deliveries"] == 1, posted.text


def test_console_responses_forbid_other_origins_and_framing(console_world: World) -> None:
    root = httpx.get(console_world.url + "/", follow_redirects=False)
    assert root.status_code == 302 and root.headers["location"] == "/console/"
    for path in ("/console/", "/console", "/console/app.js", "/console/style.css", "/console/missing.js"):
        response = httpx.get(console_world.url + path)
        assert response.status_code == (404 if "missing" in path else 200), path
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(console_world.url + "/console/app.js").headers["content-type"].startswith("text/javascript")


def test_the_console_never_parses_api_data_as_html() -> None:
    """Hook documents and events are attacker input: no API string may reach the page as markup or code."""
    for path in SKELETON.iterdir():
        text = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            if path.suffix == ".js":
                assert sink not in text.replace("No innerHTML anywhere", ""), f"{path.name} uses {sink}"
        if path.suffix == ".html":
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), "an inline script"
            assert not re.search(r"\son[a-z]+\s*=", text), "an inline event handler"


def create_hook_in_the_form(page: Any, guard: Guard, world: World, cause: str) -> str:
    """New hook: an event from the catalogue by search, a bad URL refused next to its field, a filter built from
    the event's fields, then created; the hook's id, read from the list."""
    page.get_by_role("link", name="New hook").click()
    page.get_by_label("Add an event").fill("hangup complete")
    page.locator('button[data-key="CHANNEL_HANGUP_COMPLETE"]').click()
    assert page.locator("#chosen-events").inner_text().startswith("CHANNEL_HANGUP_COMPLETE")
    page.get_by_label("URL").fill("ftp://not-a-web-address")
    page.get_by_label("Retries").fill("0")
    page.get_by_role("button", name="Add condition").click()
    page.get_by_label("Event field").fill("Hangup-Cause")
    page.get_by_label("Value").fill(cause)
    page.get_by_label("Hangup-Cause", exact=True).check()  # the field pick lists the event's fields
    page.get_by_label("Rename Hangup-Cause").fill("cause")
    guard.expected_statuses.add(400)  # the API's refusal of the URL, next to the URL field
    page.get_by_role("button", name="Create hook").click()
    error = page.locator('[data-error-for="action.url"]')
    error.wait_for()
    assert "http" in error.inner_text(), error.inner_text()
    assert page.get_by_label("URL").get_attribute("aria-invalid") == "true"
    guard.expected_statuses.discard(400)
    page.get_by_label("URL").fill(world.receiver.url)
    page.get_by_role("tab", name="JSON (Webitel document)").click()
    doc = page.locator("#hook-json").input_value()
    assert '"Hangup-Cause"' in doc and '"cause"' in doc and world.receiver.url in doc
    page.get_by_role("button", name="Create hook").click()
    row = page.locator("tr[data-hook]", has_text="CHANNEL_HANGUP_COMPLETE")
    row.wait_for()
    assert world.receiver.url in row.inner_text() and "enabled" in row.inner_text()
    hook_id = row.get_attribute("data-hook")
    assert hook_id is not None
    return hook_id


def test_a_domain_admin_builds_tries_and_repairs_a_hook(browser: Any, console_world: World) -> None:
    world, receiver = console_world, console_world.receiver
    event = sample(world, "CHANNEL_HANGUP_COMPLETE")
    call_id = event["Channel-Call-UUID"]
    with guarded_page(browser, world.url) as (page, guard):
        log_in(page, f"admin@{world.domain_a}")
        hook_id = create_hook_in_the_form(page, guard, world, event["Hangup-Cause"])

        # Try it with the catalogue's sample: the filter per condition, the exact request, then for real.
        page.locator(f'tr[data-hook="{hook_id}"]').get_by_role("link", name="Try it").click()
        page.get_by_label("Event", exact=True).select_option("sample:CHANNEL_HANGUP_COMPLETE")
        page.get_by_role("button", name="Dry run").click()
        page.locator("#verdict", has_text="would be sent").wait_for()
        assert "passes" in page.locator("#filter-result").inner_text()
        assert page.locator("#request-line").inner_text() == f"POST {receiver.url}"
        assert '"cause"' in page.locator(".result pre").first.inner_text()
        assert not receiver.requests, "a dry run sent something"
        page.get_by_role("button", name="Send it now").click()
        page.locator("#send-result", has_text="HTTP 200").wait_for()
        assert receiver.wait_for(1)[0].json()["data"] == {"cause": event["Hangup-Cause"]}

        # Post it as an event: it goes through the delivery log and arrives.
        page.get_by_role("button", name="Post as event").click()
        page.get_by_role("link", name="See the delivery log").click()
        log = page.locator("#delivery-log tr[data-delivery]")
        show = page.get_by_role("button", name="Show")
        wait_until(page, show.click, lambda: log.first.get_attribute("data-status") == "delivered", "a delivery")
        assert len(receiver.wait_for(2)) == 2

        # A delivery fails (the endpoint answers 500, no retries); it is replayed once the endpoint is back.
        receiver.status = 500
        post_again(world, event, 1)
        receiver.wait_for(3)
        failed = page.locator('#delivery-log tr[data-status="failed"]')
        wait_until(page, show.click, lambda: failed.count() == 1, "the failed delivery")
        failed.get_by_role("link", name="Attempts").click()
        page.locator("table.attempts", has_text="500").wait_for()
        receiver.status = 200
        page.get_by_role("button", name="Replay").click()
        status = page.locator("#delivery-status")
        wait_until(page, page.reload, lambda: "delivered" in status.inner_text(), "the replayed delivery delivered")
        assert "200" in page.locator("table.attempts").inner_text()

        # Another failure, recovered from the call's page; the call lists its deliveries in event order.
        receiver.status = 503
        post_again(world, event, 2)
        receiver.wait_for(5)
        receiver.status = 200
        page.get_by_role("link", name="Calls").click()
        page.get_by_label("Call id").fill(call_id)
        page.get_by_role("button", name="Find").click()
        rows = page.locator("#call-deliveries tr[data-delivery]")
        statuses = lambda: [r.get_attribute("data-status") for r in rows.all()]  # noqa: E731
        wait_until(page, page.reload, lambda: statuses() == ["delivered", "delivered", "failed"], "the failed one")
        page.get_by_role("button", name="Recover failed").click()
        page.locator("#toast", has_text="1 queued again").wait_for()
        wait_until(page, page.reload, lambda: statuses() == ["delivered"] * 3, "the call recovered")
        assert len(receiver.wait_for(6)) == 6

        # The hook list tells the story of the last hour.
        page.get_by_role("link", name="Hooks").click()
        row = page.locator(f'tr[data-hook="{hook_id}"]')
        row.wait_for()
        text = row.inner_text()
        assert "delivered" in text and "HTTP 200" in text and "%" in text, text
        guard.check()


def arrange_a_hook_with_a_delivery(world: World, call_id: str) -> tuple[str, str]:
    """Through the API: a hook of domain A and one delivery of call `call_id` (what B must never see)."""
    headers = world.admin_headers(world.domain_a)
    hook = {
        "event": "CHANNEL_ANSWER",
        "enable": True,
        "description": "alpha's secret hook",
        "action": {"type": "web", "method": "POST", "url": world.receiver.url + "?alpha-only"},
    }
    created = world.server.request("POST", "/api/v2/hooks", json=hook, headers=headers)
    hook_id: str = created.json()["data"]["insertedIds"][0]
    event = {"Event-Name": "CHANNEL_ANSWER", "Channel-Call-UUID": call_id, "variable_domain_name": world.domain_a}
    assert world.server.request("POST", "/api/v2/events", json=event, headers=headers).status_code == 202
    rows = world.server.request("GET", f"/api/v2/deliveries?call={call_id}", headers=headers).json()["data"]
    return hook_id, rows[0]["id"]


def test_an_admin_of_another_domain_sees_none_of_it(browser: Any, console_world: World) -> None:
    world = console_world
    hook_id, delivery_id = arrange_a_hook_with_a_delivery(world, "call-of-alpha")
    with guarded_page(browser, world.url) as (page, guard):
        log_in(page, f"admin@{world.domain_b}")
        page.get_by_text("No hooks yet.").wait_for()
        seen = [page.locator("main").inner_text()]
        for where, shows in [
            (f"#/hooks/{hook_id}", "Hook not found"),
            (f"#/hooks/{hook_id}/try", "Hook not found"),
            (f"#/deliveries/{delivery_id}", "Delivery not found"),
            ("#/calls/call-of-alpha", "0 deliveries of this call"),
            (f"#/hooks/{hook_id}/deliveries", "No deliveries match."),
            ("#/deliveries", "No deliveries match."),
        ]:
            page.goto(f"/console/{where}")
            page.get_by_text(shows).wait_for()
            seen.append(page.locator("main").inner_text())
        for text in seen:
            for secret in (hook_id, delivery_id, "alpha-only", "alpha's secret hook", world.domain_a):
                assert secret not in text, f"{secret} shown to domain B: {text[:300]}"
        guard.check()


def test_root_picks_a_domain_and_switches(browser: Any, console_world: World) -> None:
    world = console_world
    arrange_a_hook_with_a_delivery(world, "call-for-root")
    with guarded_page(browser, world.url) as (page, guard):
        log_in_as_root(page)
        page.get_by_role("button", name=world.domain_a).click()
        page.locator("tr[data-hook]", has_text="alpha's secret hook").first.wait_for()
        page.get_by_label("Domain").select_option(world.domain_b)
        page.get_by_text("No hooks yet.").wait_for()
        page.get_by_role("button", name="Log out").click()
        page.get_by_role("heading", name="Log in").wait_for()
        page.reload()  # the session is gone, not just hidden
        page.get_by_role("heading", name="Log in").wait_for()
        guard.check()


def test_a_token_is_shown_once_logs_in_and_is_revoked(browser: Any, console_world: World) -> None:
    world = console_world
    with guarded_page(browser, world.url) as (page, guard):
        log_in(page, f"admin@{world.domain_a}")
        page.get_by_role("link", name="Tokens").click()
        page.get_by_role("button", name="Create token").click()
        token = page.locator("#token-value").input_value()
        assert token.count(".") == 2  # a JWT
        page.get_by_role("link", name="Hooks").click()
        page.get_by_role("link", name="Tokens").click()
        page.get_by_role("heading", name="Tokens").wait_for()
        assert page.locator("#token-value").count() == 0 and token not in page.content()  # shown once
        row = page.locator("tr[data-token]").last
        token_id = row.get_attribute("data-token")
        row.get_by_role("button", name="Disable").click()
        page.locator(f'tr[data-token="{token_id}"]', has_text="disabled").wait_for()
        page.locator(f'tr[data-token="{token_id}"]').get_by_role("button", name="Enable").click()
        page.locator(f'tr[data-token="{token_id}"]', has_text="enabled").wait_for()
        page.get_by_role("button", name="Log out").click()

        page.get_by_label("Domain token").fill(token)
        page.get_by_role("button", name="Use token").click()
        page.get_by_role("heading", name="Hooks").wait_for()
        page.get_by_role("button", name="Log out").click()

        log_in(page, f"admin@{world.domain_a}")
        page.get_by_role("link", name="Tokens").click()
        revoke = page.locator(f'tr[data-token="{token_id}"]').get_by_role("button", name="Revoke")
        revoke.click()
        page.locator(f'tr[data-token="{token_id}"]').get_by_role("button", name="Confirm revoke").click()
        page.locator(f'tr[data-token="{token_id}"]').wait_for(state="detached")
        page.get_by_role("button", name="Log out").click()
        guard.expected_statuses.add(401)  # the revoked token, refused by whoami
        page.get_by_label("Domain token").fill(token)
        page.get_by_role("button", name="Use token").click()
        page.get_by_text("This token is not valid").wait_for()
        guard.check()


def test_phone_width_dark_and_keyboard_only(browser: Any, console_world: World) -> None:
    world = console_world
    phone = {"viewport": {"width": 390, "height": 844}, "color_scheme": "dark", "has_touch": True}
    with guarded_page(browser, world.url, **phone) as (page, guard):
        page.goto("/")
        page.get_by_label("Username").wait_for()
        page.keyboard.type(f"admin@{world.domain_a}")  # the username field has the focus on arrival
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        page.get_by_role("heading", name="Hooks").wait_for()
        page.locator("tr[data-hook]").first.wait_for()
        for where in ("#/hooks", "#/deliveries", "#/calls/call-of-alpha", "#/tokens", "#/hooks/new"):
            page.goto(f"/console/{where}")
            page.wait_for_load_state("networkidle")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{where} is {overflow}px wider than the phone"
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(15, 18, 23)", background  # the dark palette
        guard.check()


def test_docs_load_with_nothing_from_the_internet(browser: Any, console_world: World) -> None:
    with guarded_page(browser, console_world.url) as (page, guard):
        page.goto("/docs")
        page.locator(".swagger-ui .information-container").wait_for()
        page.get_by_text("/api/v2/hooks", exact=True).first.wait_for()
        # An operation tried from the page: its highlighted answer renders under the page's CSP (api/docs.py)
        # with no violation, which the guard would see as a console error.
        page.get_by_text("/health", exact=True).first.click()
        page.get_by_role("button", name="Try it out").click()
        page.get_by_role("button", name="Execute").click()
        page.locator(".responses-table .response-col_status", has_text="200").first.wait_for()
        guard.check()


def test_attacker_strings_in_hooks_and_events_render_as_text(browser: Any, console_world: World) -> None:
    world = console_world
    payload = '<img src="/console/none.png" onerror="window.pwned=1"><script>window.pwned=2</script>'
    headers = world.admin_headers(world.domain_a)
    hook = {
        "event": ["CHANNEL_CREATE", payload],
        "enable": True,
        "description": payload,
        "filter": {payload: {"operation": "==", "value": payload}},
        "action": {"type": "web", "method": "POST", "url": world.receiver.url},
    }
    created = world.server.request("POST", "/api/v2/hooks", json=hook, headers=headers)
    assert created.status_code == 200, created.text
    hook_id = created.json()["data"]["insertedIds"][0]
    with guarded_page(browser, world.url) as (page, guard):
        log_in(page, f"admin@{world.domain_a}")
        row = page.locator(f'tr[data-hook="{hook_id}"]')
        assert payload in row.inner_text()
        page.goto(f"/console/#/hooks/{hook_id}")
        page.locator("#filter-rows input").first.wait_for()
        assert page.locator("#filter-rows input").first.input_value() == payload
        page.goto(f"/console/#/hooks/{hook_id}/try")
        page.get_by_label("Event JSON").fill(json.dumps({"Event-Name": "CHANNEL_CREATE", payload: payload}))
        page.get_by_role("button", name="Dry run").click()
        page.locator("#filter-result", has_text=payload).wait_for()
        assert page.evaluate("window.pwned") is None
        assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
        guard.check()


def test_a_domain_with_more_hooks_than_a_page(browser: Any, console_world: World) -> None:
    world, domain = console_world, "many.example"
    root = world.root_headers()
    world.server.request("POST", "/api/v2/domains", json={"name": domain}, headers=root)
    with httpx.Client(base_url=world.url, headers=root, params={"domain": domain}) as client:
        for n in range(101):
            action = {"type": "web", "method": "POST", "url": world.receiver.url}
            key = "CHANNEL_CREATE" if n % 2 else "CHANNEL_ANSWER"  # at most 100 hooks per event key
            hook = {"event": key, "description": f"hook {n}", "action": action}
            assert client.post("/api/v2/hooks", json=hook).status_code == 200
    with guarded_page(browser, world.url) as (page, guard):
        log_in_as_root(page)
        page.get_by_role("button", name=domain).click()
        rows = page.locator("tr[data-hook]")
        rows.nth(99).wait_for()
        assert rows.count() == 100
        page.get_by_role("button", name="Next").click()
        page.get_by_text("Page 2").wait_for()
        assert rows.count() == 1 and "hook 100" in rows.first.inner_text()
        assert page.get_by_role("button", name="Next").is_disabled()
        page.get_by_role("button", name="Previous").click()
        page.get_by_text("Page 1").wait_for()
        assert rows.count() == 100
        guard.check()


def test_a_user_without_hook_rights_is_told_so(browser: Any, console_world: World) -> None:
    world = console_world
    account = {"username": "viewer", "password": PASSWORD, "role": "user"}
    params = {"domain": world.domain_a}
    world.server.request("POST", "/api/v2/accounts", params=params, json=account, headers=world.root_headers())
    with guarded_page(browser, world.url) as (page, guard):
        guard.expected_statuses.add(403)
        page.goto("/")
        page.get_by_label("Username").fill(f"viewer@{world.domain_a}")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("heading", name="Not allowed").wait_for()
        assert "ask an admin" in page.locator("main").inner_text()
        assert page.get_by_role("link", name="Tokens").is_hidden()
        guard.check()


def log_out_while_the_hook_list_waits(page: Any, hold: Callable[[Any], Held]) -> Held:
    """Go to Calls and back to Hooks with the hook list's request handed to `hold` (which keeps it unanswered), then
    log out: the screen left behind is still waiting on the API. Returns what `hold` made of the request."""
    held: list[Held] = []
    page.route(lambda url: urlsplit(url).path == "/api/v2/hooks", lambda route: held.append(hold(route)))
    page.get_by_role("link", name="Calls").click()
    page.get_by_role("heading", name="Calls").wait_for()
    page.get_by_role("link", name="Hooks").click()
    for _ in range(200):  # each evaluate lets Playwright run the route handler; bounded by tries
        if held:
            break
        page.evaluate("0")
    assert held, "the hook list was never asked for"
    page.get_by_role("button", name="Log out").click()
    return held[0]


def test_an_answer_that_arrives_after_log_out_is_not_shown(browser: Any, console_world: World) -> None:
    """A view still waiting on the API when the user logs out (or moves on) must not fill the page it left: the
    hook list answered after log out would show domain A's hooks to the next person at the screen."""
    world = console_world
    arrange_a_hook_with_a_delivery(world, "call-answered-late")
    with guarded_page(browser, world.url) as (page, guard):
        log_in(page, f"admin@{world.domain_a}")
        page.locator("tr[data-hook]", has_text="alpha's secret hook").first.wait_for()
        # The hook list's request and its real answer, kept back.
        route, answer = log_out_while_the_hook_list_waits(page, lambda route: (route, route.fetch()))
        page.get_by_role("heading", name="Log in").wait_for()

        guard.expected_statuses.add(401)  # the late view's next call goes out without a session
        with page.expect_response(lambda r: urlsplit(r.url).path == "/api/v2/stats/hooks"):
            route.fulfill(response=answer)
        page.evaluate("new Promise((done) => setTimeout(done))")  # one turn: the late view has rendered by now
        assert page.locator("tr[data-hook]").count() == 0, page.locator("main").inner_text()
        assert page.get_by_role("heading", name="Log in").is_visible()
        assert "alpha's secret hook" not in page.locator("main").inner_text()
        guard.check()


#: WCAG 2's contrast ratio of two computed CSS colours (rgb()/rgba() strings), in the page.
CONTRAST_JS = """([a, b]) => {
  const lum = (css) => {
    const [r, g, b] = css.match(/[\\d.]+/g).slice(0, 3).map((v) => {
      const c = Number(v) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}"""


def test_error_messages_and_the_focus_ring_are_readable_in_both_themes(browser: Any, console_world: World) -> None:
    """An error toast's text against its background (4.5:1, WCAG AA for text) and the keyboard focus ring against
    the page (3:1, non-text contrast), in the light and the dark palette."""
    world = console_world
    for scheme in ("light", "dark"):
        with guarded_page(browser, world.url, color_scheme=scheme) as (page, guard):
            log_in(page, f"admin@{world.domain_a}")
            page.goto("/console/#/deliveries")
            page.get_by_role("button", name="Recover failed").click()  # no hook picked: an error toast
            toast = page.locator("#toast.show[data-kind=bad]")
            toast.wait_for()
            colours = toast.evaluate("(el) => [getComputedStyle(el).color, getComputedStyle(el).backgroundColor]")
            assert page.evaluate(CONTRAST_JS, colours) >= 4.5, (scheme, colours)

            page.get_by_role("button", name="Show").focus()
            page.keyboard.press("Shift+Tab")
            page.keyboard.press("Tab")  # focus moved by the keyboard: :focus-visible applies
            ring = page.evaluate("getComputedStyle(document.activeElement).outlineColor")
            panel = page.evaluate("getComputedStyle(document.querySelector('form.filters')).backgroundColor")
            assert page.evaluate(CONTRAST_JS, [ring, panel]) >= 3, (scheme, ring, panel)
            guard.check()


def test_a_session_ended_elsewhere_brings_back_the_login_quietly(browser: Any, console_world: World) -> None:
    """Root's session ends on the server (logged out elsewhere, or expired) while the domain picker is shown: the
    reload's 401 leads to the login screen, with no uncaught error in the page."""
    world = console_world
    with guarded_page(browser, world.url) as (page, guard):
        log_in_as_root(page)
        stored = json.loads(page.evaluate("sessionStorage.getItem('switchhook.session')"))
        ended = httpx.post(world.url + "/logout", headers={"X-Access-Token": stored["token"], "X-Key": stored["key"]})
        assert ended.status_code == 200, ended.text

        guard.expected_statuses.add(401)
        page.reload()
        page.get_by_role("heading", name="Log in").wait_for()
        assert page.evaluate("sessionStorage.getItem('switchhook.session')") is None
        guard.check()


def test_a_recent_event_that_cannot_be_loaded_is_told_next_to_the_field(browser: Any, console_world: World) -> None:
    """Try it's recent events are loaded on choice; one the server cannot give (gone, or the server failing) is
    said next to the event, not thrown into the page."""
    world = console_world
    hook_id, delivery_id = arrange_a_hook_with_a_delivery(world, "call-gone-on-choice")
    with guarded_page(browser, world.url) as (page, guard):
        log_in(page, f"admin@{world.domain_a}")
        page.goto(f"/console/#/hooks/{hook_id}/try")
        page.get_by_role("heading", name="Try it").wait_for()
        page.route(
            lambda url: urlsplit(url).path == f"/api/v2/deliveries/{delivery_id}",
            lambda route: route.fulfill(status=503, json={"status": "error", "info": "Service unavailable."}),
        )
        guard.expected_statuses.add(503)
        page.locator("#try-source").select_option(f"delivery:{delivery_id}")
        said = page.locator('[data-error-for="event"].shown')
        said.wait_for()
        assert "Could not load that event: Service unavailable. (HTTP 503)" in said.inner_text()
        guard.check()


def test_the_editors_tabs_follow_the_aria_tabs_pattern(browser: Any, console_world: World) -> None:
    """Form and JSON are tabs a screen reader names as such: one Tab stop, arrow keys switch, and the panel is
    labelled by the chosen tab."""
    world = console_world
    with guarded_page(browser, world.url) as (page, guard):
        log_in(page, f"admin@{world.domain_a}")
        page.goto("/console/#/hooks/new")
        form_tab = page.get_by_role("tab", name="Form")
        form_tab.focus()
        page.keyboard.press("ArrowRight")
        json_tab = page.get_by_role("tab", name="JSON (Webitel document)")
        assert json_tab.get_attribute("aria-selected") == "true"
        assert json_tab.evaluate("(el) => el === document.activeElement")
        assert (form_tab.get_attribute("tabindex"), json_tab.get_attribute("tabindex")) == ("-1", "0")
        panel = page.get_by_role("tabpanel", name="JSON (Webitel document)")
        assert panel.locator("#hook-json").count() == 1
        page.keyboard.press("Home")
        assert form_tab.get_attribute("aria-selected") == "true"
        assert page.get_by_role("tabpanel", name="Form").get_by_label("URL").count() == 1
        guard.check()


def test_a_late_failure_of_a_screen_left_behind_does_not_reset_the_login(browser: Any, console_world: World) -> None:
    """The hook list fails (401) only after the user logged out and began typing: the login form keeps what was
    typed; the failure of a screen no longer shown is not news."""
    world = console_world
    with guarded_page(browser, world.url) as (page, guard):
        log_in(page, f"admin@{world.domain_a}")
        route = log_out_while_the_hook_list_waits(page, lambda route: route)
        page.get_by_label("Username").fill("someone@else.example")

        guard.expected_statuses.add(401)
        with page.expect_response(lambda r: urlsplit(r.url).path == "/api/v2/hooks"):
            route.fulfill(status=401, json={"status": "error", "info": "Invalid User"})
        page.evaluate("new Promise((done) => setTimeout(done))")  # one turn: the late failure has been handled
        assert page.get_by_label("Username").input_value() == "someone@else.example"
        guard.check()
