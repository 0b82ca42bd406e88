"""SPEC §2-§3 through HTTP: hook CRUD with Webitel's shapes, validation messages, paging, secrets, CORS."""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import pytest

from switchhook.store.base import HookRow
from tests.api.helpers import answer, error, hook_body, token_headers
from tests.support.app import Harness

DOMAIN = "hooks.example.com"
HOOKS = f"/api/v2/hooks?domain={DOMAIN}"
MISSING_ID = "0123456789abcdef01234567"
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef01234567").decode()
MASK = "whsec_********"


def one(hook_id: str) -> str:
    return f"/api/v2/hooks/{hook_id}?domain={DOMAIN}"


async def stored_doc(app: Harness, hook_id: str) -> dict[str, Any] | None:
    """The document as the store holds it (what reads never show, e.g. the secret)."""
    async with app.runtime.store.transaction() as tx:
        row = await tx.get_hook(DOMAIN, hook_id)
    return None if row is None else dict(row.doc)


# -- CRUD with Webitel's exact shapes, on both backends -------------------------------------------
async def test_create_read_list_replace_delete(any_app: Harness) -> None:
    app = any_app
    headers = token_headers(await app.domain_token(DOMAIN))
    body = hook_body(
        description="first", retries=2, delay=5, filter={"Caller-ANI": {"operation": "==", "value": "100"}}
    )

    created = await app.client.post(HOOKS, json=body, headers=headers)

    assert created.status_code == 200
    data = created.json()["data"]
    hook_id = data["insertedIds"][0]
    assert re.fullmatch(r"[0-9a-f]{24}", hook_id)
    assert data["result"] == {"ok": 1, "n": 1} and data["insertedCount"] == 1
    assert data["ops"] == [{"domain": DOMAIN, **body, "_id": hook_id}]

    read = await app.client.get(one(hook_id), headers=headers)
    assert answer(read) == (200, {"status": "OK", "data": {"_id": hook_id, "domain": DOMAIN, **body}})
    listed = await app.client.get(HOOKS, headers=headers)
    assert answer(listed) == (200, {"status": "OK", "data": [read.json()["data"]]})

    # PUT is a full replacement: whatever is omitted disappears.
    replacement = hook_body("CHANNEL_HANGUP_COMPLETE", url="https://example.org/other")
    replaced = await app.client.put(one(hook_id), json=replacement, headers=headers)
    assert answer(replaced) == (200, {"status": "OK", "data": {"n": 1, "nModified": 1, "ok": 1}})
    read = await app.client.get(one(hook_id), headers=headers)
    assert read.json()["data"] == {"_id": hook_id, "domain": DOMAIN, **replacement}
    for gone in ("description", "retries", "delay", "filter"):
        assert gone not in read.json()["data"]
    same_again = await app.client.put(one(hook_id), json=replacement, headers=headers)
    assert answer(same_again) == (200, {"status": "OK", "data": {"n": 1, "nModified": 0, "ok": 1}})

    deleted = await app.client.delete(one(hook_id), headers=headers)
    assert answer(deleted) == (200, {"status": "OK", "data": {"n": 1, "ok": 1}})
    assert answer(await app.client.get(one(hook_id), headers=headers)) == (
        200,
        {"status": "OK", "data": None},
    )
    assert answer(await app.client.get(HOOKS, headers=headers)) == (200, {"status": "OK", "data": []})
    assert app.services.index.get(hook_id) is None


async def test_missing_hooks_answer_null_and_n_zero(app: Harness) -> None:
    headers = token_headers(await app.domain_token(DOMAIN))

    read = await app.client.get(one(MISSING_ID), headers=headers)
    replaced = await app.client.put(one(MISSING_ID), json=hook_body(), headers=headers)
    deleted = await app.client.delete(one(MISSING_ID), headers=headers)

    assert answer(read) == (200, {"status": "OK", "data": None})
    assert answer(replaced) == (200, {"status": "OK", "data": {"n": 0, "nModified": 0, "ok": 1}})
    assert answer(deleted) == (200, {"status": "OK", "data": {"n": 0, "ok": 1}})
    assert answer(await app.client.get(HOOKS, headers=headers)) == (200, {"status": "OK", "data": []})


# -- validation: every 400 says what to fix -------------------------------------------------------
def with_action(**action: Any) -> dict[str, Any]:
    return {
        "event": "CHANNEL_CREATE",
        "action": {"type": "web", "method": "POST", "url": "https://x.test/", **action},
    }


INVALID_HOOKS: list[tuple[Any, str]] = [
    ({}, "Bad request: event name is required."),
    ({"event": "", "action": with_action()["action"]}, "Bad request: event name is required."),
    ({"event": 5, "action": with_action()["action"]}, "Bad request: event name is required."),
    ({"event": "CHANNEL_CREATE"}, "Bad request: action options is required."),
    ({"event": "CHANNEL_CREATE", "action": "web"}, "Bad request: action options is required."),
    (
        {"event": "CHANNEL_CREATE", "action": {"type": "web", "method": "POST"}},
        "Bad request: action options is required.",
    ),
    (with_action(type=""), "Bad request: action options is required."),
    (with_action(url="ftp://x.test/"), "Bad request: action.url must be an absolute http or https URL."),
    (with_action(url="example.org/hook"), "Bad request: action.url must be an absolute http or https URL."),
    (with_action(url="http://x.test:99999/"), "Bad request: action.url has an invalid port."),
    (with_action(method="FETCH"), "Bad request: action.method must be one of GET, POST, PUT, PATCH, DELETE."),
    ({**with_action(), "retries": "three"}, "Bad request: retries must be a number."),
    ({**with_action(), "retries": True}, "Bad request: retries must be a number."),
    ({**with_action(), "delay": 86_401}, "Bad request: delay must be between 0 and 86400."),
    ({**with_action(), "enable": ["yes"]}, "Bad request: enable must be true or false."),
    ({**with_action(), "customBody": 1}, "Bad request: customBody must be true or false."),
    ({**with_action(), "description": 7}, "Bad request: description must be a string."),
    ({**with_action(), "fields": "Unique-ID"}, "Bad request: fields must be a list of strings."),
    ({**with_action(), "headers": ["X-N"]}, "Bad request: headers must be an object of strings."),
    ({**with_action(), "map": []}, "Bad request: map must be an object of strings."),
    ({**with_action(), "filter": []}, "Bad request: filter must be an object."),
    ({**with_action(), "secret": "hunter2"}, "Bad request: secret must look like whsec_<base64>."),
    (
        {**with_action(), "auth": {"enabled": True, "url": "/login"}},
        "Bad request: auth.url must be an absolute http or https URL.",
    ),
    ([with_action()], "Bad request: hook must be a JSON object."),
    ("CHANNEL_CREATE", "Bad request: hook must be a JSON object."),
]


@pytest.mark.parametrize(("body", "info"), INVALID_HOOKS)
async def test_invalid_hooks_are_400_with_the_reason(app: Harness, body: Any, info: str) -> None:
    headers = token_headers(await app.domain_token(DOMAIN))
    hook_id = await app.create_hook(DOMAIN, hook_body(description="kept"), headers["X-Access-Token"])

    created = await app.client.post(HOOKS, json=body, headers=headers)
    replaced = await app.client.put(one(hook_id), json=body, headers=headers)
    replaced_missing = await app.client.put(one(MISSING_ID), json=body, headers=headers)

    assert answer(created) == (400, error(info))
    assert answer(replaced) == (400, error(info))
    assert answer(replaced_missing) == (400, error(info))
    assert (await app.client.get(one(hook_id), headers=headers)).json()["data"]["description"] == "kept"
    assert len((await app.client.get(HOOKS, headers=headers)).json()["data"]) == 1


async def test_bad_filters_are_400_naming_the_key(app: Harness) -> None:
    headers = token_headers(await app.domain_token(DOMAIN))
    ani = "filter 'Caller-ANI'"
    cases = {
        "invalid regex": ({"operation": "reg", "value": "(x"}, f"{ani} has an invalid regular expression"),
        "regex not a string": ({"operation": "reg", "value": 5}, f"{ani} with operation reg needs a string"),
        "entry not an object": ("100", f"{ani} must be an object"),
        "value an object": ({"operation": "==", "value": {}}, f"{ani} value must be"),
    }
    for name, (spec, start) in cases.items():
        body = {**with_action(), "filter": {"Caller-ANI": spec}}
        response = await app.client.post(HOOKS, json=body, headers=headers)
        assert response.status_code == 400, name
        assert response.json()["status"] == "error"
        assert response.json()["info"].startswith("Bad request: " + start), (name, response.json())


async def test_malformed_json_and_empty_bodies_are_400(app: Harness) -> None:
    headers = {**token_headers(await app.domain_token(DOMAIN)), "Content-Type": "application/json"}
    hook_id = await app.create_hook(DOMAIN, hook_body(), headers["X-Access-Token"])

    for method, path in [("POST", HOOKS), ("PUT", one(hook_id))]:
        broken = await app.client.request(method, path, content=b'{"event": "X",', headers=headers)
        empty = await app.client.request(method, path, content=b"", headers=headers)
        not_utf8 = await app.client.request(method, path, content=b"\xff\xfe{}", headers=headers)
        assert broken.status_code == 400 and broken.json()["info"].startswith("Bad request: malformed JSON"), method
        assert set(broken.json()) == {"status", "info"} and broken.json()["status"] == "error"
        assert answer(empty) == (400, error("Bad request: a JSON body is required.")), method
        assert not_utf8.status_code == 400, method


@pytest.mark.parametrize("bad_id", ["123", "nope", "0123456789abcdef012345678", "x" * 24])
async def test_a_malformed_id_is_400_on_every_route(app: Harness, bad_id: str) -> None:
    headers = token_headers(await app.domain_token(DOMAIN))
    expected = (400, error("Bad request: hook id must be 24 hex characters."))

    assert answer(await app.client.get(one(bad_id), headers=headers)) == expected
    assert answer(await app.client.put(one(bad_id), json=hook_body(), headers=headers)) == expected
    assert answer(await app.client.delete(one(bad_id), headers=headers)) == expected
    assert answer(await app.client.get(f"/api/v2/hooks/{bad_id}/deliveries", headers=headers)) == expected


async def test_unknown_routes_are_404_and_wrong_methods_405_in_the_envelope(app: Harness) -> None:
    headers = token_headers(await app.domain_token(DOMAIN))

    for path in ("/api/v2/nothing", "/api/v2/hooks/0123456789abcdef01234567/nothing", "/nothing"):
        assert answer(await app.client.get(path, headers=headers)) == (404, error(f"{path} not found."))
    wrong = await app.client.patch(one(MISSING_ID), json=hook_body(), headers=headers)
    assert wrong.status_code == 405
    assert wrong.json()["status"] == "error"


async def test_bodies_over_the_cap_are_413(app: Harness) -> None:
    headers = token_headers(await app.domain_token(DOMAIN))
    over_default = b'{"event": "' + b"x" * (5 * 1024 * 1024) + b'"}'

    declared = await app.client.post(HOOKS, content=over_default, headers=headers)

    assert declared.status_code == 413
    assert declared.json() == error(f"Request body is larger than {5 * 1024 * 1024} bytes.")

    app.services.max_body_bytes = 2048
    big = hook_body(description="x" * 4096)
    assert (await app.client.post(HOOKS, json=big, headers=headers)).status_code == 413

    async def chunks() -> Any:  # no Content-Length: the cap is enforced while reading
        for _ in range(8):
            yield b" " * 512

    streamed = await app.client.post(HOOKS, content=chunks(), headers=headers)
    assert streamed.status_code == 413
    assert streamed.json() == error("Request body is larger than 2048 bytes.")
    assert (await app.client.post(HOOKS, json=hook_body(), headers=headers)).status_code == 200


# -- listing: limit, page, columns ----------------------------------------------------------------
async def test_list_pages_with_limit_and_page_in_creation_order(app: Harness) -> None:
    token = await app.domain_token(DOMAIN)
    headers = token_headers(token)
    ids = [await app.create_hook(DOMAIN, hook_body(description=str(n)), token) for n in range(5)]

    async def page(query: str) -> list[str]:
        response = await app.client.get(f"{HOOKS}&{query}", headers=headers)
        assert response.status_code == 200, response.text
        return [h["_id"] for h in response.json()["data"]]

    assert await page("limit=2") == ids[:2]
    assert await page("limit=2&page=1") == ids[:2]
    assert await page("limit=2&page=2") == ids[2:4]
    assert await page("limit=2&page=3") == ids[4:]
    assert await page("limit=2&page=4") == []
    assert await page("limit=2&page=0") == ids[:2]  # Webitel: page <= 0 is the first page
    assert await page("limit=2&page=-3") == ids[:2]
    assert await page("limit=&page=") == ids
    assert await page("limit=0") == ids  # Webitel: `parseInt(limit) || 40`
    assert await page("limit=-2&page=2") == ids[2:4]  # Mongo: a negative limit is its size
    assert await page("limit=two") == ids  # parseInt: junk is NaN, so the default (tests/webitel)
    assert await page("limit=2&page=2.5") == ids[2:4]


async def test_list_defaults_to_40_per_page(app: Harness) -> None:
    headers = token_headers(await app.domain_token(DOMAIN))
    now = time.time()
    async with app.runtime.store.transaction() as tx:
        for n in range(45):
            await tx.insert_hook(HookRow(f"{n:024x}", DOMAIN, hook_body(description=str(n))), now)

    first = (await app.client.get(HOOKS, headers=headers)).json()["data"]
    second = (await app.client.get(f"{HOOKS}&page=2", headers=headers)).json()["data"]

    assert [h["description"] for h in first] == [str(n) for n in range(40)]
    assert [h["description"] for h in second] == [str(n) for n in range(40, 45)]


async def test_columns_project_and_always_keep_the_id(app: Harness) -> None:
    token = await app.domain_token(DOMAIN)
    hook_id = await app.create_hook(DOMAIN, hook_body(description="d", retries=1), token)

    async def columns(value: str) -> dict[str, Any]:
        response = await app.client.get(f"{HOOKS}&columns={value}", headers=token_headers(token))
        (item,) = response.json()["data"]
        return dict(item)

    assert await columns("event,enable") == {"_id": hook_id, "event": "CHANNEL_CREATE", "enable": True}
    assert await columns(" description , retries ") == {"_id": hook_id, "description": "d", "retries": 1}
    assert await columns("_id") == {"_id": hook_id}
    assert await columns("nothing") == {"_id": hook_id}
    assert list(await columns("")) == ["_id", "domain", "event", "retries", "enable", "description", "action"]


# -- what is stored and what is shown -------------------------------------------------------------
async def test_unknown_keys_are_dropped_and_the_domain_never_comes_from_the_body(app: Harness) -> None:
    headers = token_headers(await app.domain_token(DOMAIN))
    body = {
        **hook_body(),
        "domain": "evil.example.com",
        "_id": MISSING_ID,
        "foo": 1,
        "$where": "1",
        "queue": [],
    }

    created = await app.client.post(HOOKS, json=body, headers=headers)

    (doc,) = created.json()["data"]["ops"]
    hook_id = doc["_id"]
    assert hook_id != MISSING_ID
    assert doc == {"domain": DOMAIN, **hook_body(), "_id": hook_id}
    assert await stored_doc(app, hook_id) == hook_body()
    replaced = await app.client.put(one(hook_id), json={**body, "bar": True}, headers=headers)
    assert replaced.json()["data"]["n"] == 1
    assert await stored_doc(app, hook_id) == hook_body()
    assert (await app.client.get(one(hook_id), headers=headers)).json()["data"]["domain"] == DOMAIN


async def test_the_secret_is_write_only(app: Harness) -> None:
    headers = token_headers(await app.domain_token(DOMAIN))

    created = await app.client.post(HOOKS, json=hook_body(secret=SECRET), headers=headers)

    (doc,) = created.json()["data"]["ops"]
    hook_id = doc["_id"]
    assert doc["secret"] == MASK
    assert (await app.client.get(one(hook_id), headers=headers)).json()["data"]["secret"] == MASK
    assert (await app.client.get(HOOKS, headers=headers)).json()["data"][0]["secret"] == MASK
    assert SECRET not in (await app.client.get(HOOKS, headers=headers)).text
    assert (await stored_doc(app, hook_id) or {})["secret"] == SECRET

    # Sending the mask back (a client that PUTs what it read) keeps the secret.
    await app.client.put(one(hook_id), json=hook_body(description="edited", secret=MASK), headers=headers)
    stored = await stored_doc(app, hook_id) or {}
    assert (stored["secret"], stored["description"]) == (SECRET, "edited")

    rotated = "whsec_" + base64.b64encode(b"another key of 24 bytes!").decode()
    await app.client.put(one(hook_id), json=hook_body(secret=rotated), headers=headers)
    assert (await stored_doc(app, hook_id) or {})["secret"] == rotated

    # Full replace: leaving it out removes it; the mask then means nothing.
    await app.client.put(one(hook_id), json=hook_body(), headers=headers)
    assert "secret" not in (await stored_doc(app, hook_id) or {})
    assert "secret" not in (await app.client.get(one(hook_id), headers=headers)).json()["data"]
    masked = await app.client.put(one(hook_id), json=hook_body(secret=MASK), headers=headers)
    assert answer(masked) == (400, error("Bad request: secret must look like whsec_<base64>."))


# -- CORS as Webitel ------------------------------------------------------------------------------
CORS = {
    "access-control-allow-methods": "GET,PUT,POST,PATCH,DELETE,OPTIONS",
    "access-control-allow-headers": "Content-Type, Accept, X-Access-Token, X-Key",
}


async def test_cors_echoes_the_origin_on_answers_and_errors(app: Harness) -> None:
    headers = token_headers(await app.domain_token(DOMAIN))
    origin = {"Origin": "https://admin.example.org"}

    answered = await app.client.get(HOOKS, headers={**headers, **origin})
    refused = await app.client.get(HOOKS, headers=origin)
    no_origin = await app.client.get(HOOKS, headers=headers)

    for response in (answered, refused):
        assert response.headers["access-control-allow-origin"] == "https://admin.example.org"
        for name, value in CORS.items():
            assert response.headers[name] == value
    assert refused.status_code == 401
    assert no_origin.headers["access-control-allow-origin"] == "*"


async def test_options_answers_200_without_credentials(app: Harness) -> None:
    preflight = {
        "Origin": "https://admin.example.org",
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "X-Access-Token, Content-Type",
    }

    for path in (HOOKS, one(MISSING_ID), "/login", "/api/v2/domains/x/settings/token"):
        response = await app.client.options(path, headers=preflight)
        assert response.status_code == 200, path
        assert response.content == b""
        assert response.headers["access-control-allow-origin"] == "https://admin.example.org"
        for name, value in CORS.items():
            assert response.headers[name] == value
