"""Inputs a second reader found that used to answer 500; each must be a clear 4xx on both backends."""

from __future__ import annotations

from tests.support.app import Harness

ACTION = {"type": "web", "method": "POST", "url": "http://127.0.0.1:9/x"}


async def test_malformed_urls_nul_characters_and_huge_expiry_are_client_errors(any_app: Harness) -> None:
    token = await any_app.domain_token("inputs.example")
    root = await any_app.root_headers()
    headers = {"X-Access-Token": token}
    hooks = "/api/v2/hooks"

    answers = {
        "unclosed bracket": await any_app.client.post(
            hooks, json={"event": "E", "action": {**ACTION, "url": "http://[::1/hook"}}, headers=headers
        ),
        "bad ipv6": await any_app.client.post(
            hooks, json={"event": "E", "action": {**ACTION, "url": "http://[zz]/"}}, headers=headers
        ),
        "auth url": await any_app.client.post(
            hooks,
            json={"event": "E", "action": ACTION, "auth": {"enabled": True, "url": "http://[::1/a"}},
            headers=headers,
        ),
        "nul event": await any_app.client.post(hooks, json={"event": "A\u0000", "action": ACTION}, headers=headers),
        "huge expire": await any_app.client.post(
            "/api/v2/domains/inputs.example/settings/token", json={"expire": 1e20, "role": "admin"}, headers=root
        ),
        "nul in event": await any_app.post_events({"Event-Name": "A\u0000B"}, token),
    }
    for name, answer in answers.items():
        assert answer.status_code == 400, f"{name}: {answer.status_code} {answer.text}"
        assert answer.json()["status"] == "error"

    for method, path in [
        ("GET", "/api/v2/deliveries/a%00b"),
        ("POST", "/api/v2/deliveries/a%00b/retry"),
        ("DELETE", "/api/v2/domains/inputs.example/settings/token/x%00"),
        ("DELETE", "/api/v2/accounts/u%00"),
    ]:
        answer = await any_app.client.request(method, path, headers=root if "token" in path else headers)
        assert answer.status_code < 500, f"{method} {path}: {answer.status_code} {answer.text}"
