"""The seed example of Webitel's docs (docs/webitel.md), verbatim: create a hook with a domain token, then list it."""

from __future__ import annotations

import re

from tests.support.app import Harness

DOMAIN = "demo.webitel.com"
# The "Create a hook" request body of webitel/docs-en restful-http-api-hooks.rst.
CREATE_BODY = {
    "event": "CUSTOM->engine::dialer_member_end",
    "enable": True,
    "description": "dialer finished member",
    "action": {"type": "web", "method": "POST", "url": "https://requestb.in/yoe4hwyo"},
    "customBody": True,
    "rawBody": '{ "dlr_id": "${dlr_id}", "member_id": "${member_id}", "end_cause": "${endCause}" }',
    "auth": {"headers": {}, "map": {}, "enabled": False},
    "map": {},
    "filter": {},
    "fields": [],
    "headers": {"Content-Type": "application/json"},
}
LIST_EXAMPLE_KEYS = [
    "_id",
    "domain",
    "event",
    "enable",
    "description",
    "action",
    "fields",
    "map",
    "filter",
    "headers",
    "auth",
    "customBody",
    "rawBody",
]


async def test_create_answers_mongo_insert_result_and_list_shows_every_field(app: Harness) -> None:
    token = await app.domain_token(DOMAIN)
    headers = {"X-Access-Token": token}

    created = await app.client.post(f"/api/v2/hooks?domain={DOMAIN}", json=CREATE_BODY, headers=headers)

    assert created.status_code == 200
    body = created.json()
    hook_id = body["data"]["insertedIds"][0]
    assert re.fullmatch(r"[0-9a-f]{24}", hook_id)
    assert body == {
        "status": "OK",
        "data": {
            "result": {"ok": 1, "n": 1},
            "ops": [
                {
                    "domain": DOMAIN,
                    "event": CREATE_BODY["event"],
                    "enable": True,
                    "description": "dialer finished member",
                    "action": CREATE_BODY["action"],
                    "fields": [],
                    "map": {},
                    "filter": {},
                    "headers": {"Content-Type": "application/json"},
                    "auth": {"headers": {}, "map": {}, "enabled": False},
                    "customBody": True,
                    "rawBody": CREATE_BODY["rawBody"],
                    "_id": hook_id,
                }
            ],
            "insertedCount": 1,
            "insertedIds": [hook_id],
        },
    }
    # Webitel's key order, `_id` last in the insert echo.
    assert list(body["data"]["ops"][0]) == [*LIST_EXAMPLE_KEYS[1:], "_id"]

    listed = await app.client.get(f"/api/v2/hooks?domain={DOMAIN}", headers=headers)

    assert listed.status_code == 200
    data = listed.json()
    assert data["status"] == "OK"
    assert len(data["data"]) == 1
    item = data["data"][0]
    assert list(item) == LIST_EXAMPLE_KEYS
    assert item == {"_id": hook_id, **body["data"]["ops"][0]}
