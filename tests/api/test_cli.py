"""The `switchhook` CLI: migrate, token create, accounts add (password from the environment)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jwt

from tests.support.app import make_settings, running


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switchhook", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_migrate_token_and_accounts_work_offline_against_the_same_store(tmp_path: Path) -> None:
    env = {
        "SWITCHHOOK_DATA_DIR": str(tmp_path),
        "SWITCHHOOK_TOKEN_SECRET": "cli-secret-" + "z" * 32,
        "SWITCHHOOK_ACCOUNT_PASSWORD": "ops-password-1",
    }

    first, again = cli("migrate", env=env), cli("migrate", env=env)
    token = cli("token", "create", "--domain", "cli.example", "--role", "admin", "--expires", "2d", env=env)
    added = cli("accounts", "add", "ops@cli.example", "--role", "admin", env=env)
    duplicate = cli("accounts", "add", "ops@cli.example", env=env)
    bad = cli("token", "create", "--domain", "cli.example", "--role", "root", env=env)

    assert first.returncode == 0 and "0001_init" in first.stdout
    assert again.stdout.strip() == "schema is up to date"
    payload = jwt.decode(token.stdout.strip(), options={"verify_signature": False})
    assert payload["d"] == "cli.example" and payload["t"] == "domain" and payload["v"] == 2
    assert added.returncode == 0 and "added ops@cli.example (admin)" in added.stdout
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    assert bad.returncode != 0
    assert "ops-password-1" not in added.stdout + added.stderr

    settings = make_settings(tmp_path, token_secret=env["SWITCHHOOK_TOKEN_SECRET"])
    async with running(settings) as app:
        login = await app.client.post("/login", json={"username": "ops@cli.example", "password": "ops-password-1"})
        hooks = await app.client.get("/api/v2/hooks", headers={"X-Access-Token": token.stdout.strip()})
    assert login.status_code == 200 and login.json()["roleName"] == "admin"
    assert hooks.json() == {"status": "OK", "data": []}
