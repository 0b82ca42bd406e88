"""`switchhook import webitel` and `switchhook hooks export`, on a synthetic mongoexport in Webitel's shapes.

The documents are built as Webitel stored them (engine `webitel/engine-nodejs`):
- hooks: `src/services/hook/index.js` `create` copied the whitelisted keys into a document, absent ones as
  `undefined`, which the Mongo driver stored as null; `_id` is an ObjectId (`src/db/mongodb/query/hook.js`).
- domain tokens: `src/services/auth.js` `genDomainToken` made `{uuid, expire, roleName, createdBy, createdOn,
  enabled: true}` and `src/db/mongodb/query/domain.js` `addToken` pushed it into the domain's `tokens` array;
  the JWT is `jwt.encode({id: uuid, exp: expire, d: domain, t: "domain", v: 2}, secret)` with jwt-simple's
  HS256 default, the secret being the raw bytes of the key file (`src/utils/token.js`).
mongoexport writes one extended-JSON document per line: `{"$oid": …}`, `{"$numberLong": …}`, `{"$date": …}`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.app import make_settings, running, store_settings
from tests.support.fixtures import load_fixture_event
from tests.support.receiver import Receiver

WEBITEL_SECRET = "g6Yhdb8jUm!hJ78Jhsw4EEc-the-key-file"  # a test fixture, as the key file's bytes
DOMAIN = "demo.webitel.com"
OTHER = "other.webitel.com"
HOOK_ID = "59802a53a7ec15000c40926a"  # from the docs-en hooks page
QUIET_ID = "59802a53a7ec15000c40926b"
TOKEN_ID = "e26569d5-6c4e-4c0c-9d3b-0a1b2c3d4e5f"
OFF_TOKEN_ID = "0f4c2a51-1111-4222-8333-944455556666"
DIALER_END = "esl-plain-decoded-CUSTOM-engine__dialer_member_end-webitel-docs-en.txt"


def jwt_simple_encode(payload: dict[str, Any], secret: str) -> str:
    """jwt-simple 0.3 `encode(payload, key)`: header {typ, alg: HS256}, JSON.stringify, base64url, HMAC-SHA256."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def stringify(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    signing_input = b64(stringify({"typ": "JWT", "alg": "HS256"})) + "." + b64(stringify(payload))
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


def far_future_ms() -> int:
    return int((time.time() + 365 * 86_400) * 1000)


def webitel_hook(url: str, **changes: Any) -> dict[str, Any]:
    """The docs-en example hook (customBody) as the `hook` collection held it, in mongoexport's extended JSON."""
    doc: dict[str, Any] = {
        "_id": {"$oid": HOOK_ID},
        "domain": DOMAIN,
        "event": "CUSTOM->engine::dialer_member_end",
        "retries": {"$numberInt": "2"},
        "delay": "5",  # a numeric string, as a form posted it
        "enable": True,
        "description": "",
        "action": {"type": "web", "method": "post", "url": url},
        "fields": None,  # undefined in the service, null in Mongo
        "map": None,
        "filter": {},
        "headers": {"Content-Type": "application/json", "X-Ignored": {"$numberInt": "5"}},
        "auth": {"headers": {}, "map": {}, "enabled": True, "url": ""},  # enabled with no URL: no pre-request
        "customBody": True,
        "rawBody": '{ "dlr_id": "${dialerId}", "member_id": "${id}", "end_cause": "${endCause}" }',
    }
    doc.update(changes)
    return doc


def domain_doc(name: str, tokens: list[dict[str, Any]]) -> dict[str, Any]:
    return {"_id": {"$oid": "5a0b0c0d0e0f101112131415"}, "name": name, "tokens": tokens}


def token_record(uuid: str, expire_ms: int, enabled: bool = True, role: str = "admin") -> dict[str, Any]:
    return {
        "uuid": uuid,
        "expire": {"$numberLong": str(expire_ms)},
        "roleName": role,
        "createdBy": "root",
        "createdOn": {"$numberLong": "1501000000000"},
        "enabled": enabled,
    }


def write_lines(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(doc) + "\n" for doc in docs), "utf-8")
    return path


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    """Extra settings for the store the import writes to: the embedded SQLite, or a fresh PostgreSQL schema."""
    async with store_settings(request.param) as store:
        yield store


def cli(tmp_path: Path, *args: str, store: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SWITCHHOOK_DATA_DIR": str(tmp_path / "data"), "SWITCHHOOK_TOKEN_SECRET": WEBITEL_SECRET}
    env.update({f"SWITCHHOOK_{name.upper()}": value for name, value in (store or {}).items()})
    return subprocess.run(
        [sys.executable, "-m", "switchhook", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def export_files(tmp_path: Path, url: str, expire_ms: int) -> tuple[Path, Path]:
    hooks = write_lines(
        tmp_path / "hook.jsonl",
        [
            webitel_hook(url),
            # enable as a string: Webitel's `{enable: true}` query never matched it, so it never fired
            webitel_hook(url, _id={"$oid": QUIET_ID}, enable="true"),
        ],
    )
    domains = write_lines(
        tmp_path / "domains.jsonl",
        [
            domain_doc(
                DOMAIN,
                [token_record(TOKEN_ID, expire_ms), token_record(OFF_TOKEN_ID, expire_ms, enabled=False)],
            ),
            domain_doc(OTHER, []),
        ],
    )
    return hooks, domains


async def test_an_imported_webitel_token_reads_its_hook_by_the_old_id_and_the_hook_fires(
    tmp_path: Path, receiver: Receiver
) -> None:
    expire_ms = far_future_ms()
    hooks, domains = export_files(tmp_path, receiver.url("/dialer"), expire_ms)

    imported = cli(tmp_path, "import", "webitel", "--hooks", str(hooks), "--domains", str(domains))

    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == (
        "hooks: 2 created, 0 replaced; domains: 2 added; tokens: 2 created, 0 replaced; rejected: 0"
    )
    # The token an integration already holds, minted by Webitel, not by switchhook.
    old_token = jwt_simple_encode(
        {"id": TOKEN_ID, "exp": expire_ms, "d": DOMAIN, "t": "domain", "v": 2}, WEBITEL_SECRET
    )
    disabled = jwt_simple_encode(
        {"id": OFF_TOKEN_ID, "exp": expire_ms, "d": DOMAIN, "t": "domain", "v": 2}, WEBITEL_SECRET
    )
    settings = make_settings(tmp_path / "data", token_secret=WEBITEL_SECRET)
    async with running(settings) as app:
        headers = {"X-Access-Token": old_token}
        read = await app.client.get(f"/api/v2/hooks/{HOOK_ID}", headers=headers)
        quiet = await app.client.get(f"/api/v2/hooks/{QUIET_ID.upper()}", headers=headers)
        refused = await app.client.get(f"/api/v2/hooks/{HOOK_ID}", headers={"X-Access-Token": disabled})
        posted = await app.post_events(load_fixture_event(DIALER_END), old_token)
        (request,) = await receiver.wait_for(1, path="/dialer")

    assert read.status_code == 200, read.text
    hook = read.json()["data"]
    assert (hook["_id"], hook["domain"], hook["event"]) == (HOOK_ID, DOMAIN, "CUSTOM->engine::dialer_member_end")
    assert (hook["retries"], hook["delay"], hook["action"]["method"]) == (2, 5, "POST")
    assert hook["headers"] == {"Content-Type": "application/json"}  # Webitel never sent the number
    assert quiet.json()["data"]["_id"] == QUIET_ID and quiet.json()["data"]["enable"] is False
    assert refused.json() == {"status": "error", "info": "Not found token"}
    assert posted.status_code == 202 and posted.json()["data"]["deliveries"] == 1  # the quiet hook stays quiet
    assert request.json() == {
        "dlr_id": "5971aea9a7775e000b8ec987",
        "member_id": "5971aeb9a7775e000b8ec98e",
        "end_cause": "MAX_TRY_COUNT",
    }


async def test_import_again_replaces_in_place_and_reports_what_it_refused(
    tmp_path: Path, backend: dict[str, str]
) -> None:
    expire_ms = far_future_ms()
    hooks, domains = export_files(tmp_path, "https://hooks.example/dialer", expire_ms)
    first = cli(tmp_path, "import", "webitel", "--hooks", str(hooks), "--domains", str(domains), store=backend)
    changed = write_lines(
        tmp_path / "hook2.jsonl",
        [
            webitel_hook("https://hooks.example/moved", description="second import"),
            {"_id": {"$oid": "59802a53a7ec15000c40926c"}, "domain": DOMAIN, "event": "CHANNEL_CREATE"},  # no action
            {"_id": "not-an-object-id", "domain": DOMAIN, "event": "X"},
        ],
    )
    stolen = write_lines(tmp_path / "stolen.jsonl", [webitel_hook("https://evil.example/", domain=OTHER)])

    again = cli(tmp_path, "import", "webitel", "--hooks", str(changed), "--domains", str(domains), store=backend)
    moved = cli(tmp_path, "import", "webitel", "--hooks", str(stolen), store=backend)

    assert first.returncode == 0, first.stderr
    assert again.returncode == 1
    assert again.stdout.strip() == (
        "hooks: 0 created, 1 replaced; domains: 0 added; tokens: 0 created, 2 replaced; rejected: 2"
    )
    assert "hooks line 2: Bad request: action options is required." in again.stderr
    assert "hooks line 3: _id must be an ObjectId" in again.stderr
    assert moved.returncode == 1
    assert f"hook {HOOK_ID} of {OTHER}: that id belongs to domain {DOMAIN} here" in moved.stderr
    async with running(make_settings(tmp_path / "data", token_secret=WEBITEL_SECRET, **backend)) as app:
        token = jwt_simple_encode(
            {"id": TOKEN_ID, "exp": expire_ms, "d": DOMAIN, "t": "domain", "v": 2}, WEBITEL_SECRET
        )
        listed = (await app.client.get("/api/v2/hooks", headers={"X-Access-Token": token})).json()["data"]
    assert [(h["_id"], h["description"], h["action"]["url"]) for h in listed] == [
        (HOOK_ID, "second import", "https://hooks.example/moved"),
        (QUIET_ID, "", "https://hooks.example/dialer"),
    ]


async def test_hooks_export_writes_full_documents_to_a_private_file(tmp_path: Path) -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    async with running(make_settings(tmp_path / "data", token_secret=WEBITEL_SECRET)) as app:
        one = await app.create_hook(DOMAIN, {**_plain_hook(), "secret": secret})
        await app.create_hook(OTHER, _plain_hook())
        over_http = await app.client.get(f"/api/v2/hooks/{one}?domain={DOMAIN}", headers=await app.root_headers())
        paths = set(app.runtime.app().openapi()["paths"])
    out = tmp_path / "hooks-export.jsonl"
    out.write_text("stale")
    out.chmod(0o644)

    exported = cli(tmp_path, "hooks", "export", "--out", str(out), "--domain", DOMAIN)

    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.strip() == f"exported 1 hooks to {out}"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    (line,) = out.read_text().splitlines()
    doc = json.loads(line)
    assert (doc["_id"], doc["domain"], doc["secret"]) == (one, DOMAIN, secret)
    assert over_http.json()["data"]["secret"] == "whsec_********"  # HTTP never shows it
    assert not any("export" in path for path in paths)
    # The file reads back: exporting, then importing elsewhere, keeps ids and secrets.
    restored = subprocess.run(
        [sys.executable, "-m", "switchhook", "import", "webitel", "--hooks", str(out)],
        env={**os.environ, "SWITCHHOOK_DATA_DIR": str(tmp_path / "restored"), "SWITCHHOOK_TOKEN_SECRET": "x" * 40},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert restored.returncode == 0 and restored.stdout.startswith("hooks: 1 created"), restored.stderr


def _plain_hook() -> dict[str, Any]:
    return {
        "event": "CHANNEL_CREATE",
        "enable": True,
        "action": {"type": "web", "method": "POST", "url": "https://x.example/"},
    }


def test_extended_json_of_every_mongoexport_version_is_read() -> None:
    """mongoexport 4+ writes canonical or relaxed Extended JSON v2; 3.x wrote "strict mode" ($date as ISO text)."""
    from switchhook.core.webitel import decode, documents

    assert decode(
        {
            "_id": {"$oid": "5A0B0C0D0E0F101112131415"},
            "n": {"$numberInt": "3"},
            "big": {"$numberLong": "1501000000000"},
            "half": {"$numberDouble": "2.5"},
            "created": {"$date": "2017-08-01T10:00:00.000Z"},
            "canonical": {"$date": {"$numberLong": "1501581600000"}},
            "gone": {"$undefined": True},
            "list": [{"$numberInt": "1"}],
        }
    ) == {
        "_id": "5a0b0c0d0e0f101112131415",
        "n": 3,
        "big": 1501000000000,
        "half": 2.5,
        "created": 1501581600000,
        "canonical": 1501581600000,
        "gone": None,
        "list": [1],
    }
    as_array = '[{"name": "a.example"}, {"name": "b.example"}]'
    assert [doc for _, doc in documents(as_array)] == [{"name": "a.example"}, {"name": "b.example"}]
    lines = '{"name": "a.example"}\n\n{"name": \n'
    (first, second) = list(documents(lines))
    assert first == (1, {"name": "a.example"}) and second[0] == 3 and "not JSON" in str(second[1])
