"""GET /api/v2/events/catalogue through HTTP: the keys, samples that dry-run and are accepted in the caller's domain,
live keys with lastSeen, who may read it, and what one domain learns of another (nothing)."""

from __future__ import annotations

from typing import Any

from switchhook.core.events import event_domain
from switchhook.services.catalogue import LIVE_DESCRIPTION
from tests.api.helpers import add_account, hook_body, login, token_headers
from tests.support.app import Harness

DOMAIN, OTHER = "crm.example", "rival.example"
LIFECYCLE = [
    "CHANNEL_CREATE",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_ANSWER",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_HOLD",
    "CHANNEL_UNHOLD",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_DESTROY",
    "CHANNEL_CALLSTATE",
    "CHANNEL_STATE",
    "CHANNEL_EXECUTE",
    "DTMF",
]
CUSTOM = [
    "CUSTOM->callcenter::info",
    "CUSTOM->sofia::register",
    "CUSTOM->engine::dialer_member_end",
    "CUSTOM->engine::callback_member_add",
    "CUSTOM->webitel::account_status",
    "CUSTOM->webitel::user_create",
]
#: Keys no real capture exists for among the fixtures (catalogue/SOURCES.md): listed, with a null sample.
WITHOUT_SAMPLE = {"CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_HOLD", "CHANNEL_UNHOLD"}


async def catalogue(app: Harness, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    response = await app.client.get("/api/v2/events/catalogue", headers=headers, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "OK"
    entries: list[dict[str, Any]] = body["data"]
    return entries


async def test_it_covers_the_channel_lifecycle_and_the_common_custom_subclasses(app: Harness) -> None:
    token = await app.domain_token(DOMAIN)

    entries = await catalogue(app, token_headers(token))

    by_key = {e["key"]: e for e in entries}
    assert len(by_key) == len(entries)
    assert set(LIFECYCLE + CUSTOM) <= set(by_key)
    assert {k for k, e in by_key.items() if e["sample"] is None} == WITHOUT_SAMPLE
    for entry in entries:
        assert entry["known"] is True and entry["lastSeen"] is None, entry["key"]
        assert entry["description"] and "\n" not in entry["description"]
        assert entry["fields"], entry["key"]
        if entry["sample"] is not None:
            assert set(entry["fields"]) <= set(entry["sample"]), entry["key"]


async def test_every_sample_names_the_callers_domain_dry_runs_and_is_accepted(app: Harness) -> None:
    """The issue's promise: posting a sample to POST /api/v2/hooks/{id}/test matches, for every entry; and posting it
    as an event with the domain's token is accepted and delivered to that hook (the domain headers were rewritten)."""
    token = await app.domain_token(DOMAIN)
    entries = [e for e in await catalogue(app, token_headers(token)) if e["sample"] is not None]
    # One disabled hook per key: the dry run reads it, the post counts a delivery without sending anything.
    keys = [e["key"] for e in entries]
    hook = await app.create_hook(DOMAIN, {**hook_body(enable=False), "event": keys}, token)

    for entry in entries:
        sample = entry["sample"]
        assert event_domain(sample) == DOMAIN, entry["key"]
        dry = await app.client.post(f"/api/v2/hooks/{hook}/test", json=sample, headers=token_headers(token))
        assert dry.status_code == 200, (entry["key"], dry.text)
        report = dry.json()["data"]
        assert (report["eventKey"], report["eventMatches"], report["filterPasses"]) == (entry["key"], True, True)

    enabled = await app.create_hook(DOMAIN, {**hook_body(url="http://127.0.0.1:9/x"), "event": keys}, token)
    posted = await app.post_events([e["sample"] for e in entries], token)
    assert posted.status_code == 202, posted.text
    assert posted.json()["data"]["deliveries"] == len(entries)
    await app.client.delete(f"/api/v2/hooks/{enabled}", headers=token_headers(token))


async def test_root_picks_the_domain_and_must_name_one(app: Harness) -> None:
    root = await app.root_headers()

    entries = await catalogue(app, root, domain=OTHER)
    missing = await app.client.get("/api/v2/events/catalogue", headers=root)
    bad = await app.client.get("/api/v2/events/catalogue", headers=root, params={"domain": "a b"})

    create = next(e for e in entries if e["key"] == "CHANNEL_CREATE")
    assert event_domain(create["sample"]) == OTHER
    assert create["sample"]["Channel-Presence-ID"] == f"100@{OTHER}"  # the user part kept
    assert (missing.status_code, missing.json()) == (
        400,
        {"status": "error", "info": "Bad request: domain is required."},
    )
    assert bad.status_code == 400


async def test_any_caller_of_the_domain_reads_it_and_none_without_a_credential(app: Harness) -> None:
    user = await app.domain_token(DOMAIN, role="user")
    root = await app.root_headers()
    await add_account(app, DOMAIN, "agent", "user", root)
    session = await login(app, f"agent@{DOMAIN}")

    for headers in (token_headers(user), session):
        entries = await catalogue(app, headers, domain=OTHER)  # ?domain= of a domain caller is ignored
        assert event_domain(entries[0]["sample"]) == DOMAIN
    anonymous = await app.client.get("/api/v2/events/catalogue", params={"domain": DOMAIN})
    assert anonymous.status_code == 401


async def test_live_keys_and_last_seen_are_the_callers_domain_only(app: Harness) -> None:
    token, rival = await app.domain_token(DOMAIN), await app.domain_token(OTHER)
    posted = await app.post_events(
        [
            {"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "u1"},
            {"Event-Name": "CUSTOM", "Event-Subclass": "acme::crm_note", "note": "first"},
            {"Event-Name": "CUSTOM", "Event-Subclass": "acme::crm_note", "note": "latest"},
        ],
        token,
    )
    assert posted.status_code == 202
    await app.post_events({"Event-Name": "CUSTOM", "Event-Subclass": "rival::secret", "x": "y"}, rival)

    entries = await catalogue(app, token_headers(token))
    rivals = await catalogue(app, token_headers(rival))

    by_key = {e["key"]: e for e in entries}
    assert isinstance(by_key["CHANNEL_ANSWER"]["lastSeen"], int) and by_key["CHANNEL_CREATE"]["lastSeen"] is None
    live = by_key["CUSTOM->acme::crm_note"]
    assert (live["known"], live["description"]) == (False, LIVE_DESCRIPTION)
    # Samples are kept at most once a second per key: the first of the batch is the sample here.
    assert live["sample"] == {"Event-Name": "CUSTOM", "Event-Subclass": "acme::crm_note", "note": "first"}
    assert set(live["fields"]) == {"Event-Name", "Event-Subclass", "note"}
    assert "CUSTOM->rival::secret" not in by_key
    assert "CUSTOM->acme::crm_note" not in {e["key"] for e in rivals}
    assert {e["key"] for e in rivals if not e["known"]} == {"CUSTOM->rival::secret"}
    assert next(e for e in rivals if e["key"] == "CHANNEL_ANSWER")["lastSeen"] is None


async def test_a_live_keys_sample_is_shown_only_to_whom_may_read_the_domains_events(app: Harness) -> None:
    """A live key's sample is a real event of the domain; a `user` role may not read events (no delivery rights),
    so it sees the key and its lastSeen, not the event."""
    admin, user = await app.domain_token(DOMAIN), await app.domain_token(DOMAIN, role="user")
    secret_event = {"Event-Name": "CUSTOM", "Event-Subclass": "acme::private", "Caller-Number": "+15550100"}
    assert (await app.post_events(secret_event, admin)).status_code == 202

    (for_admin,) = [e for e in await catalogue(app, token_headers(admin)) if not e["known"]]
    (for_user,) = [e for e in await catalogue(app, token_headers(user)) if not e["known"]]
    as_root = await catalogue(app, await app.root_headers(), domain=DOMAIN)

    assert for_admin["sample"] == secret_event and "Caller-Number" in for_admin["fields"]
    assert next(e for e in as_root if e["key"] == "CUSTOM->acme::private")["sample"] == secret_event
    assert (for_user["key"], for_user["sample"], for_user["fields"]) == ("CUSTOM->acme::private", None, [])
    assert isinstance(for_user["lastSeen"], int)
    assert (await app.client.get("/api/v2/deliveries", headers=token_headers(user))).status_code == 403
