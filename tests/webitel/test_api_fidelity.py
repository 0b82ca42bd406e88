"""Webitel fidelity, API side: each case cites the Webitel source it reproduces (or departs from, on purpose).

Sources (the stored copies of the public repositories `webitel/engine-nodejs` and `webitel/engine`, which share
their history):
- hookClass.js = src/services/hook/hookClass.js (`Hook` constructor: retries/delay; `Hook.check` and `Operations`;
  `Trigger.find`: the `{enable: true}` query; `Trigger.send`: the auth pre-request; `_setHeadersFromEvent`)
- hook.js = src/db/mongodb/query/hook.js (`item`: `ObjectID.isValid(id)`, `new ObjectID(id)`; `search`:
  `parseInt(limit, 10) || 40`, `parseInt(page, 10)`, `columns` as a Mongo projection)
- auth.resource.js = src/adapter/rest/auth/auth.resource.js (`addRoutes`: `api.all('/api/v2/*', validateRequestV2)`;
  `validateRequestV2`: token = body.access_token || query.access_token || header x-access-token; `whoami`)
- auth.js = src/services/auth.js (`validate`: the /login answer with `role: user.role.val`, `roleName`)
- const.js = src/const/index.js (`ACCOUNT_ROLE`: root 2, admin 1, user 0; `getRoleFromName`: any other -1)
- domain.js = src/services/domain.js (`genToken`: `if (!options.role) Bad role name.`, no other check)
- acl.js = src/conf/acl.js (the roles and their `hook` grants)
- Express 4 routing: `strict: false` by default, so `/api/v2/hooks/` matches the route `/api/v2/hooks`.
The differences kept on purpose are in docs/webitel.md ("Differences from Webitel").
"""

from __future__ import annotations

from typing import Any

from tests.api.helpers import PASSWORD, add_account, answer, error, hook_body, token_headers
from tests.support.app import Harness
from tests.support.receiver import Receiver

DOMAIN = "demo.webitel.com"
HOOKS = "/api/v2/hooks"


def event(**headers: str) -> dict[str, str]:
    return {"Event-Name": "CHANNEL_CREATE", "variable_domain_name": DOMAIN, "Unique-ID": "u-1", **headers}


async def created(app: Harness, token: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create through the API, then read back what is stored."""
    response = await app.client.post(HOOKS, json=body, headers=token_headers(token))
    assert response.status_code == 200, response.text
    hook_id = response.json()["data"]["insertedIds"][0]
    read = await app.client.get(f"{HOOKS}/{hook_id}", headers=token_headers(token))
    return dict(read.json()["data"])


# -- documents Webitel stored are accepted --------------------------------------------------------
async def test_retries_and_delay_as_numeric_strings_are_numbers(app: Harness) -> None:
    """hookClass.js `Hook`: `0 < retries <= maxRetries` and `delay > 0` compared a string as JS does, numerically."""
    token = await app.domain_token(DOMAIN)
    hook = await created(app, token, hook_body(retries="3", delay="30"))
    assert (hook["retries"], hook["delay"]) == (3, 30)


async def test_out_of_range_retries_mean_no_retry(app: Harness) -> None:
    """hookClass.js `Hook`: retries outside `0 < retries <= maxRetries` (100) became 0."""
    token = await app.domain_token(DOMAIN)
    for value in (101, -2, 0.5):
        assert (await created(app, token, hook_body(retries=value)))["retries"] == 0, value


async def test_a_negative_delay_means_the_default_schedule(app: Harness) -> None:
    """hookClass.js `Hook`: `delay > 0 ? delay : defaultDelaySec`; switchhook's default schedule is spelled 0."""
    token = await app.domain_token(DOMAIN)
    assert (await created(app, token, hook_body(delay=-5)))["delay"] == 0


async def test_enable_as_a_string_is_stored_false_and_never_fires(app: Harness, receiver: Receiver) -> None:
    """hookClass.js `Trigger.find`: hooks were found with `{enable: true}`, so `"true"` never fired."""
    token = await app.domain_token(DOMAIN)
    hook = await created(app, token, hook_body(url=receiver.url(), enable="true"))
    posted = await app.post_events(event(), token)
    assert hook["enable"] is False
    assert posted.json()["data"]["deliveries"] == 0


async def test_non_string_header_values_are_dropped(app: Harness, receiver: Receiver) -> None:
    """hookClass.js `_setHeadersFromEvent`: only string values were templated and sent; others were skipped."""
    token = await app.domain_token(DOMAIN)
    headers = {"X-Call": "${Unique-ID}", "X-Count": 3, "X-Flag": True, "X-None": None}
    hook = await created(app, token, hook_body(url=receiver.url(), headers=headers))
    await app.post_events(event(), token)
    (request,) = await receiver.wait_for(1)
    assert hook["headers"] == {"X-Call": "${Unique-ID}"}
    assert request.headers["X-Call"] == "u-1"
    assert not {"X-Count", "X-Flag", "X-None"} & set(request.headers)


async def test_auth_enabled_with_an_empty_url_runs_no_pre_request(app: Harness, receiver: Receiver) -> None:
    """hookClass.js `Trigger.send`: the pre-request ran only `if (hook.auth && auth.enabled && auth.url)`."""
    token = await app.domain_token(DOMAIN)
    auth = {"enabled": True, "url": "", "method": "POST", "headers": {}, "map": {}}
    hook = await created(app, token, hook_body(url=receiver.url("/main"), auth=auth))
    await app.post_events(event(), token)
    await receiver.wait_for(1)
    assert hook["auth"]["enabled"] is True and hook["auth"]["url"] == ""
    assert [r.path for r in receiver.requests] == ["/main"]


async def test_an_unknown_filter_operation_is_stored_never_passes_and_the_dry_run_says_so(app: Harness) -> None:
    """hookClass.js `Hook.check`: `!Operations.hasOwnProperty(operation)` failed the hook for every event."""
    token = await app.domain_token(DOMAIN)
    spec = {"Unique-ID": {"operation": "like", "value": "u-1"}}
    hook = await created(app, token, hook_body(filter=spec))
    posted = await app.post_events(event(), token)
    dry_run = await app.client.post(f"{HOOKS}/{hook['_id']}/test", json=event(), headers=token_headers(token))
    assert hook["filter"] == spec
    assert posted.json()["data"]["deliveries"] == 0
    report = dry_run.json()["data"]
    assert (report["filter"], report["filterPasses"]) == ({"Unique-ID": False}, False)
    assert report["filterUnknown"] == {
        "Unique-ID": "unknown operation 'like': this condition never holds (as in Webitel)"
    }


# -- API edges ------------------------------------------------------------------------------------
async def test_a_trailing_slash_routes_like_without_one(app: Harness) -> None:
    """Express routing is not strict: `/api/v2/hooks/` is `/api/v2/hooks` (no redirect), the events route too."""
    token = await app.domain_token(DOMAIN)
    headers = token_headers(token)
    create = await app.client.post(f"{HOOKS}/", json=hook_body(), headers=headers)
    hook_id = create.json()["data"]["insertedIds"][0]
    listed = await app.client.get(f"{HOOKS}/", headers=headers)
    item = await app.client.get(f"{HOOKS}/{hook_id}/", headers=headers)
    events = await app.client.post("/api/v2/events/", json=event(), headers=headers)
    assert create.status_code == 200
    assert listed.status_code == 200 and [h["_id"] for h in listed.json()["data"]] == [hook_id]
    assert item.status_code == 200 and item.json()["data"]["_id"] == hook_id
    assert events.status_code == 202


async def test_access_token_in_a_json_body_authenticates_before_the_header(app: Harness) -> None:
    """auth.resource.js `validateRequestV2`: `req.body.access_token` is read first, then the query, then the header."""
    token = await app.domain_token(DOMAIN)
    body = {**hook_body(), "access_token": token}
    create = await app.client.post(HOOKS, json=body, headers={"X-Access-Token": "not-a-token"})
    hook_id = create.json()["data"]["insertedIds"][0]
    read = await app.client.get(f"{HOOKS}/{hook_id}", headers=token_headers(token))
    assert create.status_code == 200
    assert "access_token" not in read.json()["data"]  # a credential, never part of the hook


async def test_ids_in_upper_case_hex_are_found(app: Harness) -> None:
    """hook.js `item`: `ObjectID.isValid(id)` and `new ObjectID(id)` read hex in either case."""
    token = await app.domain_token(DOMAIN)
    hook_id = await app.create_hook(DOMAIN, hook_body(), token)
    read = await app.client.get(f"{HOOKS}/{hook_id.upper()}", headers=token_headers(token))
    deleted = await app.client.delete(f"{HOOKS}/{hook_id.upper()}", headers=token_headers(token))
    assert read.json()["data"]["_id"] == hook_id
    assert deleted.json()["data"] == {"n": 1, "ok": 1}


async def test_limit_and_page_parse_like_parse_int(app: Harness) -> None:
    """hook.js `search`: `parseInt(limit, 10) || 40`, `parseInt(page, 10)`: "2.9" is 2, junk is the default."""
    token = await app.domain_token(DOMAIN)
    ids = [await app.create_hook(DOMAIN, hook_body(description=str(n)), token) for n in range(5)]

    async def page(query: str) -> list[str]:
        response = await app.client.get(f"{HOOKS}?{query}", headers=token_headers(token))
        assert response.status_code == 200, (query, response.text)
        return [h["_id"] for h in response.json()["data"]]

    assert await page("limit=2.9") == ids[:2]
    assert await page("limit=2&page=2.9") == ids[2:4]
    assert await page("limit=2abc&page=3") == ids[4:]
    assert await page("limit=%202") == ids[:2]
    assert await page("limit=junk&page=junk") == ids


async def test_columns_project_dotted_paths(app: Harness) -> None:
    """hook.js `search`: `columns` is a Mongo projection, where `action.url` keeps that one embedded field."""
    token = await app.domain_token(DOMAIN)
    hook_id = await app.create_hook(DOMAIN, hook_body(url="https://a.example/h"), token)
    response = await app.client.get(f"{HOOKS}?columns=action.url,event", headers=token_headers(token))
    assert response.json()["data"] == [
        {"_id": hook_id, "event": "CHANNEL_CREATE", "action": {"url": "https://a.example/h"}}
    ]


async def test_an_unknown_api_v2_route_without_a_credential_is_401(app: Harness) -> None:
    """auth.resource.js `addRoutes`: `api.all('/api/v2/*', validateRequestV2)` ran before any route matched."""
    token = await app.domain_token(DOMAIN)
    anonymous = await app.client.get("/api/v2/nothing-here")
    wrong_method = await app.client.patch(HOOKS)
    known = await app.client.get("/api/v2/nothing-here", headers=token_headers(token))
    assert answer(anonymous) == (401, error("Invalid token"))
    assert answer(wrong_method) == (401, error("Invalid token"))
    assert answer(known) == (404, error("/api/v2/nothing-here not found."))


async def test_login_answers_role_number_and_role_name(app: Harness) -> None:
    """auth.js `validate`: `role: user.role.val, roleName: user.role.name`; const.js `ACCOUNT_ROLE` numbers."""
    root = await app.root_headers()
    await add_account(app, DOMAIN, "alice", "admin", root)
    await add_account(app, DOMAIN, "bob", "user", root)
    answers = {}
    for username in ("root", f"alice@{DOMAIN}", f"bob@{DOMAIN}"):
        password = PASSWORD if "@" in username else "root-password-for-tests"
        body = (await app.client.post("/login", json={"username": username, "password": password})).json()
        answers[username] = (body["role"], body["roleName"])
    assert answers == {"root": (2, "root"), f"alice@{DOMAIN}": (1, "admin"), f"bob@{DOMAIN}": (0, "user")}


async def test_whoami_answers_unwrapped(app: Harness) -> None:
    """auth.resource.js `whoami`: `res.json({acl, id, domain, roleName, expires, ...})`, no {status, data}."""
    token = await app.domain_token(DOMAIN, role="admin")
    body = (await app.client.get("/api/v2/whoami", headers=token_headers(token))).json()
    assert list(body)[:5] == ["acl", "id", "domain", "roleName", "expires"]
    assert "status" not in body and "data" not in body
    assert (body["domain"], body["roleName"], body["acl"]["hook"]) == (DOMAIN, "admin", ["c", "r", "u", "d"])


async def test_a_domain_token_may_carry_any_role_name_which_grants_no_hooks(app: Harness) -> None:
    """domain.js `genToken`: only `!options.role` was refused; acl.js gives an unknown role no `hook` grant.

    On purpose: `root` is refused (Webitel let a domain admin mint a root-role token)."""
    root = await app.root_headers()
    await app.client.post("/api/v2/domains", json={"name": DOMAIN}, headers=root)
    path = f"/api/v2/domains/{DOMAIN}/settings/token"
    expire = 4_102_444_800_000  # 2100-01-01 in ms
    minted = await app.client.post(path, json={"expire": expire, "role": "supervisor"}, headers=root)
    as_root = await app.client.post(path, json={"expire": expire, "role": "root"}, headers=root)
    token = minted.json()["info"]["token"]
    hooks = await app.client.get(HOOKS, headers=token_headers(token))
    whoami = await app.client.get("/api/v2/whoami", headers=token_headers(token))
    assert minted.json()["info"]["data"]["roleName"] == "supervisor"
    assert answer(hooks) == (403, error("Permission denied!"))
    assert (whoami.json()["roleName"], whoami.json()["acl"]) == ("supervisor", {})
    assert answer(as_root) == (400, error("Bad role name."))
