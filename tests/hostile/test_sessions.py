"""Issue 13, item 10: sessions outlived a password change.

Root's sessions stayed valid after a restart with a new SWITCHHOOK_ROOT_PASSWORD, and an account had no way
to change its password at all, nor anyone a way to end sessions. Now a session remembers which password it
was made with (a digest of the stored hash, never the password) and ends when that is no longer the
account's; a password change also deletes the account's sessions; `DELETE /api/v2/sessions` ends sessions
at will (root: anyone's; a domain's admin: its own domain's).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from switchhook.services.auth import hash_password
from tests.api.helpers import PASSWORD, add_account, answer, error, login, token_headers
from tests.support.app import ROOT_PASSWORD, Harness
from tests.support.process import TOKEN_SECRET, ServerProcess

DOMAIN, OTHER = "sessions.example", "elsewhere.example"
NEW_PASSWORD = "a brand new passphrase"  # a test fixture


async def whoami(app: Harness, headers: dict[str, str]) -> httpx.Response:
    return await app.client.get("/api/v2/whoami", headers=headers)


async def test_a_restart_with_a_new_root_password_ends_roots_sessions(tmp_path: Path) -> None:
    env = {"SWITCHHOOK_DATA_DIR": str(tmp_path)}
    server = await ServerProcess(env, tmp_path).start_async()
    try:
        body = (
            await server.request_async("POST", "/login", json={"username": "root", "password": ROOT_PASSWORD})
        ).json()
        session = {"X-Access-Token": body["token"], "X-Key": body["key"]}
    finally:
        await server.stop_async()

    same = await ServerProcess(env, tmp_path).start_async()  # the same password: the session lives on
    try:
        assert (await same.request_async("GET", "/api/v2/whoami", headers=session)).status_code == 200
    finally:
        await same.stop_async()

    changed = await ServerProcess({**env, "SWITCHHOOK_ROOT_PASSWORD": NEW_PASSWORD}, tmp_path).start_async()
    try:
        refused = await changed.request_async("GET", "/api/v2/whoami", headers=session)
        assert answer(refused) == (401, error("Invalid User"))
        old = await changed.request_async("POST", "/login", json={"username": "root", "password": ROOT_PASSWORD})
        new = await changed.request_async("POST", "/login", json={"username": "root", "password": NEW_PASSWORD})
        assert (old.status_code, new.status_code) == (401, 200)
    finally:
        await changed.stop_async()


async def test_changing_an_accounts_password_ends_its_sessions_only(app: Harness) -> None:
    root = await app.root_headers()
    await add_account(app, DOMAIN, "bob", "admin", root)
    await add_account(app, DOMAIN, "carol", "user", root)
    bob_laptop, bob_phone = await login(app, f"bob@{DOMAIN}"), await login(app, f"bob@{DOMAIN}")
    carol = await login(app, f"carol@{DOMAIN}")

    changed = await app.client.patch(
        f"/api/v2/accounts/bob?domain={DOMAIN}", headers=root, json={"password": NEW_PASSWORD}
    )

    assert answer(changed) == (
        200,
        {"status": "OK", "data": {"username": "bob", "domain": DOMAIN, "role": "admin", "sessionsEnded": 2}},
    )
    for session in (bob_laptop, bob_phone):
        assert answer(await whoami(app, session)) == (401, error("Invalid User"))
    assert (await whoami(app, carol)).status_code == 200  # another account's session is untouched
    assert (
        await app.client.post("/login", json={"username": f"bob@{DOMAIN}", "password": PASSWORD})
    ).status_code == 401
    bob = await login(app, f"bob@{DOMAIN}", NEW_PASSWORD)
    # a new role alone applies to bob's session at once: demoted, he may no longer change carol's password
    demoted = await app.client.patch(f"/api/v2/accounts/bob?domain={DOMAIN}", headers=root, json={"role": "user"})
    assert demoted.json()["data"]["sessionsEnded"] == 0  # a role alone ends nothing...
    assert (await whoami(app, bob)).json()["roleName"] == "user"  # ...and takes effect at once
    assert (
        await app.client.patch("/api/v2/accounts/carol", headers=bob, json={"password": NEW_PASSWORD})
    ).status_code == 403


async def test_a_domain_admin_changes_passwords_in_its_own_domain_only(app: Harness) -> None:
    root = await app.root_headers()
    await add_account(app, OTHER, "victim", "admin", root)
    victim = await login(app, f"victim@{OTHER}")
    attacker = token_headers(await app.domain_token(DOMAIN))  # the admin of another domain

    attempt = await app.client.patch(
        f"/api/v2/accounts/victim?domain={OTHER}", headers=attacker, json={"password": NEW_PASSWORD}
    )
    ended = await app.client.delete(f"/api/v2/sessions?domain={OTHER}&username=victim", headers=attacker)

    assert answer(attempt) == (404, error(f"Account victim@{DOMAIN} not found."))  # confined to its own domain
    assert answer(ended) == (200, {"status": "OK", "data": {"n": 0, "ok": 1}})
    assert (await whoami(app, victim)).status_code == 200
    for body, info in (
        ({}, "Bad request: body must be a JSON object with password and/or role."),
        ({"password": "short"}, "Bad request: password must be at least 8 characters."),
        ({"role": "root"}, "Bad role name."),
    ):
        response = await app.client.patch(f"/api/v2/accounts/victim?domain={OTHER}", headers=root, json=body)
        assert answer(response) == (400, error(info))


async def test_a_password_set_elsewhere_ends_sessions_made_with_the_old_one(app: Harness) -> None:
    """The session's credential, not only the deletion, ends it: e.g. a login that was checking the old password
    while another process changed it stores its session after that process deleted the account's sessions."""
    root = await app.root_headers()
    await add_account(app, DOMAIN, "dana", "admin", root)
    dana = await login(app, f"dana@{DOMAIN}")
    async with app.runtime.store.transaction() as tx:  # the new hash, and no session deleted
        await tx.update_account(DOMAIN, "dana", hash_password(NEW_PASSWORD), None)

    assert answer(await whoami(app, dana)) == (401, error("Invalid User"))


async def test_sessions_are_ended_on_request(app: Harness) -> None:
    root, other_root = await app.root_headers(), await app.root_headers()
    await add_account(app, DOMAIN, "erin", "admin", root)
    await add_account(app, DOMAIN, "frank", "user", root)
    await add_account(app, OTHER, "grace", "user", root)
    erin, frank, grace = (
        await login(app, f"erin@{DOMAIN}"),
        await login(app, f"frank@{DOMAIN}"),
        await login(app, f"grace@{OTHER}"),
    )

    by_root = await app.client.delete(f"/api/v2/sessions?domain={DOMAIN}&username=frank", headers=root)
    assert answer(by_root) == (200, {"status": "OK", "data": {"n": 1, "ok": 1}})
    assert (await whoami(app, frank)).status_code == 401 and (await whoami(app, erin)).status_code == 200

    frank = await login(app, f"frank@{DOMAIN}")
    assert (await app.client.delete("/api/v2/sessions", headers=frank)).status_code == 403  # a user may not
    by_admin = await app.client.delete("/api/v2/sessions", headers=erin)  # all of its domain's, its own too
    assert answer(by_admin) == (200, {"status": "OK", "data": {"n": 2, "ok": 1}})
    assert (await whoami(app, frank)).status_code == 401 and (await whoami(app, erin)).status_code == 401
    assert (await whoami(app, grace)).status_code == 200

    no_domain = await app.client.delete("/api/v2/sessions", headers=root)
    assert answer(no_domain) == (400, error("Bad request: domain is required."))
    roots = await app.client.delete("/api/v2/sessions?username=root", headers=root)
    assert answer(roots) == (200, {"status": "OK", "data": {"n": 2, "ok": 1}})
    assert (await whoami(app, other_root)).status_code == 401


async def test_the_cli_changes_an_accounts_password_and_ends_its_sessions(tmp_path: Path) -> None:
    env = {"SWITCHHOOK_DATA_DIR": str(tmp_path)}
    server = await ServerProcess(env, tmp_path).start_async()
    try:
        root_body = (
            await server.request_async("POST", "/login", json={"username": "root", "password": ROOT_PASSWORD})
        ).json()
        root = {"X-Access-Token": root_body["token"], "X-Key": root_body["key"]}
        account = {"username": "ops", "password": PASSWORD, "role": "admin"}
        assert (
            await server.request_async("POST", f"/api/v2/accounts?domain={DOMAIN}", json=account, headers=root)
        ).status_code == 200
        body = (
            await server.request_async("POST", "/login", json={"username": f"ops@{DOMAIN}", "password": PASSWORD})
        ).json()
        ops = {"X-Access-Token": body["token"], "X-Key": body["key"]}

        changed = subprocess.run(
            [sys.executable, "-m", "switchhook", "accounts", "password", f"ops@{DOMAIN}"],
            env={
                **os.environ,
                **env,
                "SWITCHHOOK_TOKEN_SECRET": TOKEN_SECRET,
                "SWITCHHOOK_ACCOUNT_PASSWORD": NEW_PASSWORD,
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        missing = subprocess.run(
            [sys.executable, "-m", "switchhook", "accounts", "password", f"nobody@{DOMAIN}"],
            env={**os.environ, **env, "SWITCHHOOK_ACCOUNT_PASSWORD": NEW_PASSWORD},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert changed.returncode == 0, changed.stderr
        assert "1 session(s) ended" in changed.stdout and NEW_PASSWORD not in changed.stdout + changed.stderr
        assert (missing.returncode, missing.stderr.strip()) == (1, f"Account nobody@{DOMAIN} not found.")
        assert (await server.request_async("GET", "/api/v2/whoami", headers=ops)).status_code == 401
        new = await server.request_async("POST", "/login", json={"username": f"ops@{DOMAIN}", "password": NEW_PASSWORD})
        assert new.status_code == 200
    finally:
        await server.stop_async()
