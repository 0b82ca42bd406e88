"""Through HTTP: Webitel's credential decision flow (docs/webitel.md), sessions, domain tokens, domains and accounts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.helpers import PASSWORD, add_account, answer, error, hook_body, login, token_headers
from tests.support.app import ROOT_PASSWORD, Harness
from tests.support.waiting import eventually

DOMAIN = "auth.example.com"
OTHER = "other.example.com"
HOOKS = f"/api/v2/hooks?domain={DOMAIN}"


def now_ms() -> int:
    return int(time.time() * 1000)


def secret(app: Harness) -> str:
    value: str = app.runtime.settings.token_secret
    return value


def token_url(domain: str = DOMAIN, token_id: str = "") -> str:
    return f"/api/v2/domains/{domain}/settings/token" + (f"/{token_id}" if token_id else "")


# -- the 401s of Webitel's decision flow ----------------------------------------------------------
Credentials = Callable[[Harness], Awaitable[dict[str, str]]]


async def no_token(app: Harness) -> dict[str, str]:
    return {}


async def garbage_token(app: Harness) -> dict[str, str]:
    return token_headers("not-a-jwt")


async def wrong_signature(app: Harness) -> dict[str, str]:
    payload = {"id": str(uuid.uuid4()), "exp": now_ms() + 60_000, "d": DOMAIN, "t": "domain", "v": 2}
    return token_headers(jwt.encode(payload, "another-secret-of-at-least-32-bytes!", algorithm="HS256"))


async def unsigned_token(app: Harness) -> dict[str, str]:
    payload = {"id": str(uuid.uuid4()), "exp": now_ms() + 60_000, "d": DOMAIN, "t": "domain", "v": 2}
    return token_headers(jwt.encode(payload, None, algorithm="none"))


async def expired_domain_token(app: Harness) -> dict[str, str]:
    token = app.services.auth.mint_domain_token(str(uuid.uuid4()), DOMAIN, now_ms() - 1000)
    return token_headers(token)


async def expired_session_token(app: Harness) -> dict[str, str]:
    token = jwt.encode({"exp": now_ms() - 1, "key": "k"}, secret(app), algorithm="HS256")
    return {"X-Access-Token": token, "X-Key": str(uuid.uuid4())}


async def session_token_without_key(app: Harness) -> dict[str, str]:
    root = await app.root_headers()
    return {"X-Access-Token": root["X-Access-Token"]}


async def session_token_with_wrong_key(app: Harness) -> dict[str, str]:
    root = await app.root_headers()
    return {"X-Access-Token": root["X-Access-Token"], "X-Key": str(uuid.uuid4())}


async def key_of_another_session(app: Harness) -> dict[str, str]:
    first, second = await app.root_headers(), await app.root_headers()
    return {"X-Access-Token": first["X-Access-Token"], "X-Key": second["X-Key"]}


async def unknown_domain_token(app: Harness) -> dict[str, str]:
    return token_headers(app.services.auth.mint_domain_token(str(uuid.uuid4()), DOMAIN, now_ms() + 60_000))


@pytest.mark.parametrize(
    ("credentials", "info"),
    [
        (no_token, "Invalid token"),
        (garbage_token, "Invalid token"),
        (wrong_signature, "Invalid token"),
        (unsigned_token, "Invalid token"),
        (expired_domain_token, "Token Expired"),
        (expired_session_token, "Token Expired"),
        (session_token_without_key, "Invalid Token or Key"),
        (session_token_with_wrong_key, "Invalid User"),
        (key_of_another_session, "Invalid User"),
        (unknown_domain_token, "Not found token"),
    ],
)
async def test_bad_credentials_get_webitels_401(app: Harness, credentials: Credentials, info: str) -> None:
    headers = await credentials(app)

    for method, path in [
        ("GET", HOOKS),
        ("POST", HOOKS),
        ("GET", "/api/v2/whoami"),
        ("GET", "/api/v2/domains"),
    ]:
        response = await app.client.request(method, path, headers=headers, json=hook_body())
        assert answer(response) == (401, error(info)), (method, path)


async def test_credentials_also_come_from_the_query_string(app: Harness) -> None:
    token = await app.domain_token(DOMAIN)
    root = await app.root_headers()

    by_token = await app.client.get("/api/v2/whoami", params={"access_token": token})
    by_session = await app.client.get(
        "/api/v2/whoami", params={"access_token": root["X-Access-Token"], "x_key": root["X-Key"]}
    )

    assert by_token.status_code == 200 and by_token.json()["domain"] == DOMAIN
    assert by_session.status_code == 200 and by_session.json()["roleName"] == "root"


# -- sessions: login, whoami, logout --------------------------------------------------------------
async def test_root_login_answers_a_session(app: Harness) -> None:
    before = now_ms()
    response = await app.client.post("/login", json={"username": "root", "password": ROOT_PASSWORD})

    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["key", "domain", "username", "expires", "token", "role", "roleName", "acl"]
    assert (body["username"], body["domain"], body["role"], body["roleName"]) == ("root", None, 2, "root")
    assert body["acl"]["hook"] == ["*"]
    uuid.UUID(body["key"])
    assert body["expires"] > before + 86_400_000  # milliseconds, far in the future
    assert jwt.decode(body["token"], options={"verify_signature": False})["exp"] == body["expires"]


@pytest.mark.parametrize(
    "body",
    [
        {"username": "root", "password": "wrong password"},
        {"username": f"nobody@{DOMAIN}", "password": PASSWORD},
        {"username": "", "password": ""},
        {"username": "root"},
    ],
)
async def test_wrong_credentials_are_401(app: Harness, body: dict[str, str]) -> None:
    assert answer(await app.client.post("/login", json=body)) == (401, error("Invalid credentials"))


async def test_login_needs_a_json_object(app: Harness) -> None:
    for content in (b"", b"{nope", b'["root", "pw"]'):
        response = await app.client.post("/login", content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, content
        assert response.json()["status"] == "error"


async def test_repeated_failed_logins_are_refused_with_retry_after_and_no_password_check(app: Harness) -> None:
    """After 5 failures a name's next try waits: answered 429 at once (it used to be held open 1 s, then checked)."""
    wrong = {"username": "root", "password": "not-" + ROOT_PASSWORD}
    right = {"username": "root", "password": ROOT_PASSWORD}
    for _ in range(5):
        assert answer(await app.client.post("/login", json=wrong)) == (401, error("Invalid credentials"))
    checks = await password_checks(app)

    refused = await asyncio.gather(*(app.client.post("/login", json=body) for body in (wrong, right)))

    for response in refused:  # the right password too: nothing is checked while the name is slowed down
        assert answer(response) == (429, error("Too many failed logins: retry later."))
        assert response.headers["Retry-After"] == "1"
    assert await password_checks(app) == checks

    async def logs_in() -> bool:
        return (await app.client.post("/login", json=right)).status_code == 200

    await eventually(logs_in, "a login once Retry-After passed")  # and a success forgets the failures
    assert answer(await app.client.post("/login", json=wrong)) == (401, error("Invalid credentials"))


async def password_checks(app: Harness) -> float:
    text = (await app.client.get("/metrics")).text
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    return next(s.value for s in samples if s.name == "switchhook_password_checks_total")


async def test_domain_user_logs_in_as_user_at_domain_and_whoami_names_it(app: Harness) -> None:
    root = await app.root_headers()
    await add_account(app, DOMAIN, "alice", "admin", root)

    response = await app.client.post("/login", json={"username": f"alice@{DOMAIN}", "password": PASSWORD})
    wrong = await app.client.post("/login", json={"username": f"alice@{DOMAIN}", "password": "not it at all"})
    elsewhere = await app.client.post("/login", json={"username": f"alice@{OTHER}", "password": PASSWORD})

    assert response.status_code == 200
    session = response.json()
    assert (session["username"], session["domain"], session["role"], session["roleName"]) == (
        f"alice@{DOMAIN}",
        DOMAIN,
        1,
        "admin",
    )
    assert answer(wrong) == (401, error("Invalid credentials"))
    assert answer(elsewhere) == (401, error("Invalid credentials"))
    headers = {"X-Access-Token": session["token"], "X-Key": session["key"]}
    whoami = await app.client.get("/api/v2/whoami", headers=headers)
    assert answer(whoami) == (
        200,
        {
            "acl": session["acl"],
            "id": f"alice@{DOMAIN}",
            "domain": DOMAIN,
            "roleName": "admin",
            "expires": session["expires"],
            "kind": "session",
        },
    )


async def test_whoami_of_root_and_of_a_domain_token(app: Harness) -> None:
    root = await app.root_headers()
    token = await app.domain_token(DOMAIN, role="user")
    payload = jwt.decode(token, options={"verify_signature": False})

    as_root = (await app.client.get("/api/v2/whoami", headers=root)).json()
    as_token = (await app.client.get("/api/v2/whoami", headers=token_headers(token))).json()

    assert (as_root["id"], as_root["domain"], as_root["roleName"]) == ("root", None, "root")
    assert as_token == {
        "acl": {"domain": ["r"]},
        "id": f"{payload['id']}@{DOMAIN}",
        "domain": DOMAIN,
        "roleName": "user",
        "expires": payload["exp"],
        "kind": "domain_token",
    }


async def test_logout_ends_the_session_and_sweeps_only_that_one(app: Harness) -> None:
    first, second = await app.root_headers(), await app.root_headers()

    response = await app.client.post("/logout", headers=first)

    assert answer(response) == (200, {"status": "OK", "info": "Successful logout."})
    again = await app.client.get("/api/v2/whoami", headers=first)
    assert answer(again) == (401, error("Invalid User"))
    assert answer(await app.client.post("/logout", headers=first)) == (401, error("Invalid User"))
    assert (await app.client.get("/api/v2/whoami", headers=second)).status_code == 200


async def test_logout_needs_a_session(app: Harness) -> None:
    token = await app.domain_token(DOMAIN)

    assert answer(await app.client.post("/logout")) == (401, error("Invalid token"))
    assert answer(await app.client.post("/logout", headers=token_headers(token))) == (
        401,
        error("Invalid Token or Key"),
    )


# -- domain tokens ---------------------------------------------------------------------------------
async def test_root_mints_lists_and_revokes_domain_tokens(app: Harness) -> None:
    root = await app.root_headers()
    await app.client.post("/api/v2/domains", headers=root, json={"name": DOMAIN})
    expire = now_ms() + 3_600_000

    created = await app.client.post(token_url(), headers=root, json={"expire": expire, "role": "admin"})

    assert created.status_code == 200, created.text
    body = created.json()
    assert set(body) == {"status", "info"} and body["status"] == "OK"
    assert set(body["info"]) == {"data", "token"}
    token = body["info"]["token"]
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) == {"id", "exp", "d", "t", "v"}
    assert payload["exp"] == expire  # milliseconds, as given
    assert (payload["d"], payload["t"], payload["v"]) == (DOMAIN, "domain", 2)
    uuid.UUID(payload["id"])
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    data = body["info"]["data"]
    assert (data["uuid"], data["domain"], data["roleName"], data["expire"], data["enabled"]) == (
        payload["id"],
        DOMAIN,
        "admin",
        expire,
        True,
    )

    # The token works on its own, without X-Key.
    assert (await app.client.get(HOOKS, headers=token_headers(token))).status_code == 200
    listed = await app.client.get(token_url(), headers=root)
    assert answer(listed) == (200, {"status": "OK", "data": [data]})

    revoked = await app.client.delete(token_url(token_id=payload["id"]), headers=root)
    assert answer(revoked) == (200, {"status": "OK", "data": {"n": 1, "ok": 1}})
    # Refused on its very next request.
    assert answer(await app.client.get(HOOKS, headers=token_headers(token))) == (
        401,
        error("Not found token"),
    )
    assert (await app.client.get(token_url(), headers=root)).json()["data"] == []
    again = await app.client.delete(token_url(token_id=payload["id"]), headers=root)
    assert answer(again) == (200, {"status": "OK", "data": {"n": 0, "ok": 1}})


async def test_a_disabled_token_is_refused_and_works_again_once_enabled(app: Harness) -> None:
    root = await app.root_headers()
    token = await app.domain_token(DOMAIN)
    token_id = jwt.decode(token, options={"verify_signature": False})["id"]
    headers = token_headers(token)
    assert (await app.client.get(HOOKS, headers=headers)).status_code == 200

    disabled = await app.client.patch(token_url(token_id=token_id), headers=root, json={"state": False})

    assert answer(disabled) == (200, {"status": "OK", "data": {"n": 1, "ok": 1}})
    assert answer(await app.client.get(HOOKS, headers=headers)) == (401, error("Not found token"))
    listed = (await app.client.get(token_url(), headers=root)).json()["data"]
    assert [t["enabled"] for t in listed] == [False]

    enabled = await app.client.patch(token_url(token_id=token_id), headers=root, json={"state": True})

    assert answer(enabled) == (200, {"status": "OK", "data": {"n": 1, "ok": 1}})
    assert (await app.client.get(HOOKS, headers=headers)).status_code == 200
    bad_state = await app.client.patch(token_url(token_id=token_id), headers=root, json={"state": "off"})
    assert answer(bad_state) == (400, error("Bad request: state must be true or false."))


async def test_a_domain_admin_manages_its_own_tokens_only(app: Harness) -> None:
    admin = token_headers(await app.domain_token(DOMAIN))
    other_token = await app.domain_token(OTHER)
    other_id = jwt.decode(other_token, options={"verify_signature": False})["id"]
    body = {"expire": now_ms() + 60_000, "role": "admin"}

    own = await app.client.post(token_url(), headers=admin, json=body)
    assert own.status_code == 200
    for method, path, json in [
        ("POST", token_url(OTHER), body),
        ("GET", token_url(OTHER), None),
        ("DELETE", token_url(OTHER, other_id), None),
        ("PATCH", token_url(OTHER, other_id), {"state": False}),
    ]:
        response = await app.client.request(method, path, headers=admin, json=json)
        assert answer(response) == (403, error("Permission denied!")), (method, path)
    # The other domain's token still works.
    assert (
        await app.client.get(f"/api/v2/hooks?domain={OTHER}", headers=token_headers(other_token))
    ).status_code == 200


async def test_a_user_cannot_manage_tokens(app: Harness) -> None:
    user = token_headers(await app.domain_token(DOMAIN, role="user"))
    body = {"expire": now_ms() + 60_000, "role": "user"}

    assert answer(await app.client.post(token_url(), headers=user, json=body)) == (
        403,
        error("Permission denied!"),
    )
    assert answer(await app.client.get(token_url(), headers=user)) == (403, error("Permission denied!"))


@pytest.mark.parametrize(
    ("body", "info"),
    [
        ({"role": "admin"}, "Bad expire date."),
        ({"expire": 1000, "role": "admin"}, "Bad expire date."),
        ({"expire": "tomorrow", "role": "admin"}, "Bad expire date."),
        ({"expire": True, "role": "admin"}, "Bad expire date."),
        ({"expire": "FUTURE"}, "Bad role name."),
        ({"expire": "FUTURE", "role": ""}, "Bad role name."),
        ({"expire": "FUTURE", "role": "root"}, "Bad role name."),
    ],
)
async def test_token_requests_are_validated(app: Harness, body: dict[str, object], info: str) -> None:
    root = await app.root_headers()
    await app.client.post("/api/v2/domains", headers=root, json={"name": DOMAIN})
    if body.get("expire") == "FUTURE":
        body = {**body, "expire": now_ms() + 60_000}

    assert answer(await app.client.post(token_url(), headers=root, json=body)) == (400, error(info))


async def test_tokens_of_an_unknown_domain_are_404(app: Harness) -> None:
    root = await app.root_headers()
    body = {"expire": now_ms() + 60_000, "role": "admin"}

    response = await app.client.post(token_url("missing.example.com"), headers=root, json=body)

    assert answer(response) == (404, error("Domain missing.example.com not found."))


# -- domains (root) -------------------------------------------------------------------------------
async def test_domains_are_created_listed_and_deleted_by_root(app: Harness) -> None:
    root = await app.root_headers()

    created = await app.client.post("/api/v2/domains", headers=root, json={"name": DOMAIN})
    duplicate = await app.client.post("/api/v2/domains", headers=root, json={"name": DOMAIN})
    await app.client.post("/api/v2/domains", headers=root, json={"name": OTHER})

    assert answer(created) == (200, {"status": "OK", "data": {"name": DOMAIN}})
    assert answer(duplicate) == (409, error(f"Domain {DOMAIN} already exists."))
    listed = await app.client.get("/api/v2/domains", headers=root)
    assert answer(listed) == (200, {"status": "OK", "data": [{"name": DOMAIN}, {"name": OTHER}]})
    bad = await app.client.post("/api/v2/domains", headers=root, json={"name": "a/b"})
    assert bad.status_code == 400

    token = await app.domain_token(DOMAIN)
    hook_id = await app.create_hook(DOMAIN, hook_body(), token)
    deleted = await app.client.delete(f"/api/v2/domains/{DOMAIN}", headers=root)

    assert answer(deleted) == (200, {"status": "OK", "data": {"n": 1, "ok": 1}})
    # Everything in it is gone: its tokens stop working and its hooks are no more.
    assert answer(await app.client.get(HOOKS, headers=token_headers(token))) == (
        401,
        error("Not found token"),
    )
    gone = await app.client.get(f"/api/v2/hooks/{hook_id}?domain={DOMAIN}", headers=root)
    assert answer(gone) == (200, {"status": "OK", "data": None})
    assert app.services.index.get(hook_id) is None, "a deleted domain's hook still fires"
    listed = await app.client.get("/api/v2/domains", headers=root)
    assert listed.json()["data"] == [{"name": OTHER}]


async def test_only_root_creates_or_deletes_domains(app: Harness) -> None:
    root = await app.root_headers()
    await app.client.post("/api/v2/domains", headers=root, json={"name": OTHER})
    for role in ("admin", "user"):
        headers = token_headers(await app.domain_token(DOMAIN, role=role))
        create = await app.client.post("/api/v2/domains", headers=headers, json={"name": "new.example.com"})
        delete_other = await app.client.delete(f"/api/v2/domains/{OTHER}", headers=headers)
        delete_own = await app.client.delete(f"/api/v2/domains/{DOMAIN}", headers=headers)
        assert answer(create) == (403, error("Permission denied!")), role
        assert answer(delete_other) == (403, error("Permission denied!")), role
        assert answer(delete_own) == (403, error("Permission denied!")), role
        # A domain caller sees its own domain and no other.
        listed = await app.client.get("/api/v2/domains", headers=headers)
        assert answer(listed) == (200, {"status": "OK", "data": [{"name": DOMAIN}]}), role
    names = [d["name"] for d in (await app.client.get("/api/v2/domains", headers=root)).json()["data"]]
    assert names == [DOMAIN, OTHER]


# -- accounts (root, or the domain's admin) -------------------------------------------------------
async def test_root_manages_accounts_of_any_domain_and_must_name_it(app: Harness) -> None:
    root = await app.root_headers()
    body = {"username": "bob", "password": PASSWORD, "role": "user"}

    no_domain = await app.client.post("/api/v2/accounts", headers=root, json=body)
    created = await app.client.post(f"/api/v2/accounts?domain={DOMAIN}", headers=root, json=body)
    duplicate = await app.client.post(f"/api/v2/accounts?domain={DOMAIN}", headers=root, json=body)

    assert answer(no_domain) == (400, error("Bad request: domain is required."))
    assert answer(created) == (
        200,
        {"status": "OK", "data": {"username": "bob", "domain": DOMAIN, "role": "user"}},
    )
    assert answer(duplicate) == (409, error(f"Account bob@{DOMAIN} already exists."))
    listed = await app.client.get(f"/api/v2/accounts?domain={DOMAIN}", headers=root)
    assert listed.json()["data"] == [{"username": "bob", "domain": DOMAIN, "role": "user"}]
    assert "password" not in listed.text and "hash" not in listed.text
    assert answer(await app.client.get("/api/v2/accounts", headers=root)) == (
        400,
        error("Bad request: domain is required."),
    )
    deleted = await app.client.delete(f"/api/v2/accounts/bob?domain={DOMAIN}", headers=root)
    assert answer(deleted) == (200, {"status": "OK", "data": {"n": 1, "ok": 1}})
    assert (await app.client.get(f"/api/v2/accounts?domain={DOMAIN}", headers=root)).json()["data"] == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"username": "x@y", "password": PASSWORD}, 400),
        ({"username": "", "password": PASSWORD}, 400),
        ({"username": "carol", "password": "short"}, 400),
        ({"username": "carol", "password": PASSWORD, "role": "root"}, 400),
        ({"username": "carol", "password": 12345678}, 400),
    ],
)
async def test_account_requests_are_validated(app: Harness, body: dict[str, object], status: int) -> None:
    root = await app.root_headers()

    response = await app.client.post(f"/api/v2/accounts?domain={DOMAIN}", headers=root, json=body)

    assert response.status_code == status
    assert response.json()["status"] == "error"
    assert response.json()["info"].startswith("Bad")


async def test_a_domain_admin_manages_accounts_of_its_own_domain_only(app: Harness) -> None:
    root = await app.root_headers()
    await add_account(app, OTHER, "victim", "admin", root)
    admin = token_headers(await app.domain_token(DOMAIN))
    body = {"username": "mallory", "password": PASSWORD, "role": "admin"}

    created = await app.client.post(f"/api/v2/accounts?domain={OTHER}", headers=admin, json=body)
    listed = await app.client.get(f"/api/v2/accounts?domain={OTHER}", headers=admin)
    deleted = await app.client.delete(f"/api/v2/accounts/victim?domain={OTHER}", headers=admin)

    # `?domain=` is ignored for a domain caller: the account lands in its own domain.
    assert answer(created) == (
        200,
        {"status": "OK", "data": {"username": "mallory", "domain": DOMAIN, "role": "admin"}},
    )
    assert [a["username"] for a in listed.json()["data"]] == ["mallory"]
    assert answer(deleted) == (200, {"status": "OK", "data": {"n": 0, "ok": 1}})
    other_accounts = (await app.client.get(f"/api/v2/accounts?domain={OTHER}", headers=root)).json()["data"]
    assert other_accounts == [{"username": "victim", "domain": OTHER, "role": "admin"}]
    assert (
        await app.client.post("/login", json={"username": f"mallory@{OTHER}", "password": PASSWORD})
    ).status_code == 401
    mallory = await login(app, f"mallory@{DOMAIN}")
    assert (await app.client.get("/api/v2/whoami", headers=mallory)).json()["domain"] == DOMAIN


async def test_users_cannot_manage_accounts(app: Harness) -> None:
    user = token_headers(await app.domain_token(DOMAIN, role="user"))
    body = {"username": "eve", "password": PASSWORD, "role": "admin"}

    for method, path, json in [
        ("POST", "/api/v2/accounts", body),
        ("GET", "/api/v2/accounts", None),
        ("DELETE", "/api/v2/accounts/eve", None),
    ]:
        response = await app.client.request(method, path, headers=user, json=json)
        assert answer(response) == (403, error("Permission denied!")), method


async def test_deleting_an_account_ends_its_sessions(app: Harness) -> None:
    root = await app.root_headers()
    await add_account(app, DOMAIN, "dave", "admin", root)
    dave = await login(app, f"dave@{DOMAIN}")
    assert (await app.client.get(HOOKS, headers=dave)).status_code == 200

    await app.client.delete(f"/api/v2/accounts/dave?domain={DOMAIN}", headers=root)

    assert answer(await app.client.get(HOOKS, headers=dave)) == (401, error("Invalid User"))
