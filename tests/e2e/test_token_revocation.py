"""A revoked domain token stops working at once in every process, though each caches token lookups."""

from __future__ import annotations

from pathlib import Path

from switchhook.services.auth import TOKEN_CACHE_S
from tests.support.app import ROOT, make_settings, running
from tests.support.postgres import drop_schema, new_schema, require_postgres
from tests.support.waiting import eventually

DOMAIN = "revoke.example"


async def test_revocation_through_one_process_is_refused_by_another(tmp_path: Path) -> None:
    dsn = await require_postgres()
    schema = new_schema()
    settings = make_settings(tmp_path, database_url=dsn, database_schema=schema)
    try:
        async with running(settings) as one, running(settings) as two:
            token = await one.domain_token(DOMAIN)
            headers = {"X-Access-Token": token}
            assert (await two.client.get("/api/v2/hooks", headers=headers)).status_code == 200  # now cached in two
            token_id = (await one.services.domains.list_domain_tokens(ROOT, DOMAIN))[0]["uuid"]
            root = await one.root_headers()

            revoked = await one.client.delete(f"/api/v2/domains/{DOMAIN}/settings/token/{token_id}", headers=root)
            assert revoked.json()["data"]["n"] == 1

            async def refused() -> bool:
                return (await two.client.get("/api/v2/hooks", headers=headers)).status_code == 401

            # Well before the other process's cached lookup would have expired on its own.
            await eventually(refused, "the other process to refuse the revoked token", TOKEN_CACHE_S / 2)
            answer = await two.client.get("/api/v2/hooks", headers=headers)
            assert answer.json() == {"status": "error", "info": "Not found token"}
    finally:
        await drop_schema(dsn, schema)
