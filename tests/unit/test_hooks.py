"""The hook document (docs/behaviour.md): validation rules, Webitel key order, masking, and the compiled Hook."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from switchhook.core.errors import InvalidHook, ValidationFailed
from switchhook.core.filters import RegexLimits, expanded_size, passes
from switchhook.core.hooks import (
    HOOK_KEYS,
    MAX_RETRIES,
    METHODS,
    SECRET_MASK,
    STORED_KEYS,
    Hook,
    HookLimits,
    event_keys,
    is_connection_header,
    is_hook_id,
    public_view,
    validate_hook,
)
from switchhook.core.names import validate_domain_name

HOOK_ID = "598035b7a7ec15000c40926e"
DOMAIN = "demo.webitel.com"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"
# The hook document of SPEC §2 (Webitel's docs example), without the server-owned `_id` and `domain`.
WEBITEL_HOOK: dict[str, Any] = {
    "event": "CUSTOM->engine::dialer_member_end",
    "enable": True,
    "description": "dialer finished member",
    "action": {"type": "web", "method": "POST", "url": "https://example.org/hook"},
    "fields": [],
    "map": {},
    "filter": {},
    "headers": {"Content-Type": "application/json"},
    "auth": {"enabled": False, "url": "", "method": "GET", "headers": {}, "map": {}, "cookie": False},
    "customBody": True,
    "rawBody": '{ "dlr_id": "${dlr_id}", "end_cause": "${endCause}" }',
    "retries": 3,
    "delay": 60,
}
WEBITEL_ORDER = [
    "domain",
    "event",
    "retries",
    "delay",
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


def minimal(**extra: Any) -> dict[str, Any]:
    return {
        "event": "CHANNEL_CREATE",
        "action": {"type": "web", "method": "POST", "url": "https://h.example/"},
        **extra,
    }


def rejected(body: Any, previous_secret: str | None = None) -> str:
    with pytest.raises(InvalidHook) as raised:
        validate_hook(body, previous_secret)
    message = raised.value.message
    assert message.startswith("Bad request: ")
    return message


# --- required fields -----------------------------------------------------------------------------


def test_the_webitel_example_is_valid_and_kept() -> None:
    doc = validate_hook(copy.deepcopy(WEBITEL_HOOK))
    assert doc == WEBITEL_HOOK
    assert list(doc) == [key for key in STORED_KEYS if key in WEBITEL_HOOK]


def test_minimal_hook() -> None:
    assert validate_hook(minimal()) == minimal()


@pytest.mark.parametrize("event", [None, "", "   ", 5, {"name": "x"}, True, [5], [""], ["A", "  "], ["A", None]])
def test_event_name_is_required(event: Any) -> None:
    body = minimal()
    body["event"] = event
    assert rejected(body) == "Bad request: event name is required."


def test_event_may_be_an_array_of_keys_stored_as_given() -> None:
    keys = ["CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"]
    assert validate_hook(minimal(event=keys))["event"] == keys
    assert validate_hook(minimal(event=["CUSTOM->x::y"]))["event"] == ["CUSTOM->x::y"]  # one key is still an array
    hook = Hook.compile("a" * 24, "d.example", validate_hook(minimal(event=keys)))
    assert hook.events == tuple(keys) and hook.event == "CHANNEL_CREATE"
    assert Hook.compile("a" * 24, "d.example", minimal()).events == ("CHANNEL_CREATE",)


@pytest.mark.parametrize(
    ("event", "says"),
    [
        ([], "an array of 1 to 64 event names"),
        ([f"K{i}" for i in range(65)], "an array of 1 to 64 event names"),
        (["A", "B", "A"], "must not name the same event twice"),
        (["A", "B\x00"], "must not contain NUL characters"),
    ],
)
def test_an_event_array_is_non_empty_unique_and_at_most_64_keys(event: list[str], says: str) -> None:
    assert says in rejected(minimal(event=event))


def test_64_event_keys_are_allowed() -> None:
    keys = [f"K{i}" for i in range(64)]
    assert validate_hook(minimal(event=keys))["event"] == keys


def test_event_keys_of_a_stored_event() -> None:
    assert event_keys("A") == ("A",)
    assert event_keys(["A", "B"]) == ("A", "B")
    assert event_keys(None) == () and event_keys(5) == ()


def test_missing_event_is_reported_before_missing_action() -> None:
    assert rejected({}) == "Bad request: event name is required."
    assert rejected({"action": {}}) == "Bad request: event name is required."


@pytest.mark.parametrize(
    "action",
    [
        None,
        "web",
        [],
        {},
        {"method": "POST", "url": "https://h.example/"},
        {"type": "web", "url": "https://h.example/"},
        {"type": "web", "method": "POST"},
        {"type": "", "method": "POST", "url": "https://h.example/"},
        {"type": "web", "method": "", "url": "https://h.example/"},
        {"type": "web", "method": "POST", "url": ""},
        {"type": "web", "method": 1, "url": "https://h.example/"},
        {"type": "web", "method": "POST", "url": None},
        {"type": True, "method": "POST", "url": "https://h.example/"},
    ],
)
def test_action_options_are_required(action: Any) -> None:
    body = {"event": "CHANNEL_CREATE", "action": action}
    assert rejected(body) == "Bad request: action options is required."
    del body["action"]
    assert rejected(body) == "Bad request: action options is required."


@pytest.mark.parametrize("body", [None, [], "hook", 1, True])
def test_body_must_be_an_object(body: Any) -> None:
    assert "object" in rejected(body)


# --- action --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "get", "Post", "pAtCh"])
def test_methods_are_upper_cased(method: str) -> None:
    doc = validate_hook(minimal(action={"type": "web", "method": method, "url": "http://h.example/x"}))
    assert doc["action"]["method"] == method.upper()
    assert METHODS == ("GET", "POST", "PUT", "PATCH", "DELETE")


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "CONNECT", "TRACE", "POST ", "FETCH"])
def test_other_methods_are_rejected(method: str) -> None:
    message = rejected(minimal(action={"type": "web", "method": method, "url": "https://h.example/"}))
    assert message == "Bad request: action.method must be one of GET, POST, PUT, PATCH, DELETE."


@pytest.mark.parametrize(
    "url",
    [
        "http://h.example",
        "https://h.example:8443/path?q=1#f",
        "http://10.0.0.1:8080/hook",
        "http://[::1]:8080/",
        "https://user:pass@h.example/",
        "HTTPS://H.EXAMPLE/",
    ],
)
def test_absolute_http_urls_are_accepted(url: str) -> None:
    doc = validate_hook(minimal(action={"type": "web", "method": "POST", "url": url}))
    assert doc["action"]["url"] == url


@pytest.mark.parametrize(
    "url",
    [
        "/relative/path",
        "h.example/hook",
        "ftp://h.example/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://",
        "http:///path",
        "https://:443/",
        "mailto:a@b.c",
    ],
)
def test_non_http_or_relative_urls_are_rejected(url: str) -> None:
    message = rejected(minimal(action={"type": "web", "method": "POST", "url": url}))
    assert message == "Bad request: action.url must be an absolute http or https URL."


@pytest.mark.parametrize("url", ["http://h.example:99999/", "http://h.example:port/"])
def test_invalid_ports_are_rejected(url: str) -> None:
    assert "action.url" in rejected(minimal(action={"type": "web", "method": "POST", "url": url}))


@pytest.mark.parametrize("url", ["http://h.example/a\r\nX-Injected: 1", "http://h.exa\tmple/", "http://h.example/\x00"])
def test_urls_with_control_characters_are_rejected(url: str) -> None:
    assert "action.url" in rejected(minimal(action={"type": "web", "method": "POST", "url": url}))


def test_other_action_types_are_stored_but_do_not_deliver() -> None:
    doc = validate_hook(minimal(action={"type": "email", "method": "POST", "url": "https://h.example/"}))
    assert doc["action"]["type"] == "email"
    hook = Hook.compile(HOOK_ID, DOMAIN, {**doc, "enable": True})
    assert hook.delivers is False


def test_action_is_copied_not_aliased() -> None:
    body = minimal()
    doc = validate_hook(body)
    doc["action"]["url"] = "https://changed.example/"
    assert body["action"]["url"] == "https://h.example/"


# --- unknown keys and key order ------------------------------------------------------------------


def test_unknown_keys_are_dropped() -> None:
    body = minimal(_id="ffffffffffffffffffffffff", domain="evil.example", unknown=1, createdOn=5, Enable=True, ENABLE=1)
    assert validate_hook(body) == minimal()


def test_domain_is_never_taken_from_the_body() -> None:
    assert "domain" not in validate_hook(minimal(domain="other.example"))
    assert "domain" not in STORED_KEYS
    assert HOOK_KEYS[0] == "domain"


def test_null_values_are_treated_as_absent() -> None:
    body = minimal(enable=None, retries=None, delay=None, secret=None, filter=None, auth=None, rawBody=None)
    assert validate_hook(body) == minimal()


def test_stored_key_order_is_webitels_whatever_the_input_order() -> None:
    body = dict(reversed(list({**WEBITEL_HOOK, "timeout": 5, "ttl": 60, "secret": SECRET}.items())))
    doc = validate_hook(body)
    assert list(doc) == [*WEBITEL_ORDER[1:], "timeout", "ttl", "secret"]


def test_validate_does_not_mutate_the_body() -> None:
    body = copy.deepcopy({**WEBITEL_HOOK, "junk": 1, "action": {"type": "web", "method": "post", "url": "http://h/"}})
    before = copy.deepcopy(body)
    validate_hook(body)
    assert body == before


# --- field types ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [[], {}])
def test_enable_must_be_a_boolean(value: Any) -> None:
    assert rejected(minimal(enable=value)) == "Bad request: enable must be true or false."


@pytest.mark.parametrize("value", ["true", "false", 1, 0, "1"])
def test_enable_that_webitel_never_fired_is_stored_as_false(value: Any) -> None:
    # Webitel matched `{enable: true}`: only the boolean fired (docs/webitel.md).
    assert validate_hook(minimal(enable=value))["enable"] is False


@pytest.mark.parametrize("value", [True, False])
def test_enable_booleans(value: bool) -> None:
    assert validate_hook(minimal(enable=value))["enable"] is value


@pytest.mark.parametrize("value", ["true", 1, 0])
def test_custom_body_must_be_a_boolean(value: Any) -> None:
    assert "customBody" in rejected(minimal(customBody=value))


@pytest.mark.parametrize("key", ["description", "rawBody"])
@pytest.mark.parametrize("value", [1, True, [], {"a": "b"}])
def test_text_fields_must_be_strings(key: str, value: Any) -> None:
    assert rejected(minimal(**{key: value})) == f"Bad request: {key} must be a string."


@pytest.mark.parametrize("value", ["Unique-ID", ["Unique-ID", 1], {"a": "b"}, [None]])
def test_fields_must_be_a_list_of_strings(value: Any) -> None:
    assert rejected(minimal(fields=value)) == "Bad request: fields must be a list of strings."


def test_fields_and_map_are_kept() -> None:
    doc = validate_hook(minimal(fields=["Unique-ID", "Answer-State"], map={"Unique-ID": "uuid"}))
    assert doc["fields"] == ["Unique-ID", "Answer-State"]
    assert doc["map"] == {"Unique-ID": "uuid"}


@pytest.mark.parametrize("key", ["map", "headers"])
@pytest.mark.parametrize("value", [["a"], "a"])
def test_map_and_headers_must_be_objects_of_strings(key: str, value: Any) -> None:
    assert rejected(minimal(**{key: value})) == f"Bad request: {key} must be an object of strings."


@pytest.mark.parametrize("value", [{"a": 1}, {"a": None}, {"a": {"b": "c"}}])
def test_map_values_must_be_strings(value: Any) -> None:
    assert rejected(minimal(map=value)) == "Bad request: map must be an object of strings."


def test_non_string_header_values_are_dropped_as_webitel_skipped_them() -> None:
    headers = {"X-A": "1", "X-B": 2, "X-C": None, "X-D": {"e": "f"}, "X-E": True}
    assert validate_hook(minimal(headers=headers))["headers"] == {"X-A": "1"}
    auth = validate_hook(minimal(auth={"headers": {"X-A": 1, "X-B": "b"}, "map": {"a": ["b"], "c": "d"}}))["auth"]
    assert (auth["headers"], auth["map"]) == ({"X-B": "b"}, {"c": "d"})


@pytest.mark.parametrize("name", ["X Bad", "X-Bad\r\nX-Injected", "", "Bad:Name", "Ünï", "X(y)"])
def test_header_names_must_be_tokens(name: str) -> None:
    message = rejected(minimal(headers={name: "v"}))
    assert message.startswith("Bad request: headers has an invalid header name")
    message = rejected(minimal(auth={"enabled": False, "headers": {name: "v"}}))
    assert message.startswith("Bad request: auth.headers has an invalid header name")


def test_header_templates_are_accepted() -> None:
    headers = {"Authorization": "Bearer ${auth:body:token}", "X-Call": "${Unique-ID}", "x_under.dot~": "1"}
    assert validate_hook(minimal(headers=headers))["headers"] == headers


# --- retries, delay, timeout, ttl ----------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 3, 100, 3.0])
def test_retries_in_range(value: Any) -> None:
    doc = validate_hook(minimal(retries=value))
    assert doc["retries"] == int(value)
    assert type(doc["retries"]) is int


@pytest.mark.parametrize("value", [-1, 101, 1000, 0.5, "-3", "1e3"])
def test_retries_out_of_range_mean_none_as_in_webitel(value: Any) -> None:
    assert validate_hook(minimal(retries=value))["retries"] == 0


@pytest.mark.parametrize(("value", "stored"), [("3", 3), (" 7 ", 7), ("100", 100), (2.5, 2), ("2.9", 2)])
def test_numeric_retries_are_normalised(value: Any, stored: int) -> None:
    doc = validate_hook(minimal(retries=value))
    assert doc["retries"] == stored and type(doc["retries"]) is int


def test_empty_retries_string_is_absent() -> None:
    assert "retries" not in validate_hook(minimal(retries=""))


@pytest.mark.parametrize("value", ["three", "0x10", True, False, [], float("nan"), float("inf")])
def test_retries_must_be_a_number(value: Any) -> None:
    assert rejected(minimal(retries=value)) == "Bad request: retries must be a number."


def test_max_retries_constant() -> None:
    assert MAX_RETRIES == 100


@pytest.mark.parametrize(("key", "value"), [("delay", 0), ("delay", 60), ("delay", 0.5), ("delay", 86_400)])
def test_delay_in_range(key: str, value: float) -> None:
    assert validate_hook(minimal(**{key: value}))[key] == value


@pytest.mark.parametrize(("value", "stored"), [("60", 60), ("0.5", 0.5), (-1, 0), ("-5", 0)])
def test_numeric_and_negative_delays_are_normalised(value: Any, stored: float) -> None:
    assert validate_hook(minimal(delay=value))["delay"] == stored


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("delay", 86_401, "delay must be between 0 and 86400."),
        ("delay", "sixty", "delay must be a number."),
        ("delay", True, "delay must be a number."),
        ("delay", float("nan"), "delay must be a number."),
        ("timeout", 0, "timeout must be between 0.1 and 60."),
        ("timeout", 0.05, "timeout must be between 0.1 and 60."),
        ("timeout", 61, "timeout must be between 0.1 and 60."),
        ("timeout", "15", "timeout must be a number."),
        ("timeout", float("inf"), "timeout must be a number."),
        ("ttl", 0, "ttl must be between 1 and 2592000."),
        ("ttl", 30 * 86_400 + 1, "ttl must be between 1 and 2592000."),
        ("ttl", False, "ttl must be a number."),
        ("ttl", None, None),
    ],
)
def test_number_fields_are_checked(key: str, value: Any, message: str | None) -> None:
    if message is None:
        assert key not in validate_hook(minimal(**{key: value}))
        return
    assert rejected(minimal(**{key: value})) == "Bad request: " + message


@pytest.mark.parametrize(("key", "value"), [("timeout", 0.1), ("timeout", 15), ("timeout", 60), ("ttl", 1)])
def test_extension_numbers_in_range(key: str, value: float) -> None:
    assert validate_hook(minimal(**{key: value}))[key] == value


def test_ttl_up_to_thirty_days() -> None:
    assert validate_hook(minimal(ttl=30 * 86_400))["ttl"] == 30 * 86_400


# --- secret --------------------------------------------------------------------------------------


def test_secret_is_validated_and_stored() -> None:
    assert validate_hook(minimal(secret=SECRET))["secret"] == SECRET


@pytest.mark.parametrize("secret", ["", "secret", "whsec_", "whsec_not base64", "whsec_AAAA", 5, True])
def test_malformed_secrets_are_rejected(secret: Any) -> None:
    assert "secret" in rejected(minimal(secret=secret))


def test_secret_mask_keeps_the_previous_secret() -> None:
    assert validate_hook(minimal(secret=SECRET_MASK), previous_secret=SECRET)["secret"] == SECRET


def test_secret_mask_without_a_previous_secret_is_rejected() -> None:
    assert "secret" in rejected(minimal(secret=SECRET_MASK))
    assert "secret" in rejected(minimal(secret=SECRET_MASK), previous_secret="")


def test_a_new_secret_replaces_the_previous_one() -> None:
    assert validate_hook(minimal(secret=OTHER_SECRET), previous_secret=SECRET)["secret"] == OTHER_SECRET


def test_omitting_the_secret_removes_it() -> None:
    assert "secret" not in validate_hook(minimal(), previous_secret=SECRET)


# --- auth ----------------------------------------------------------------------------------------


def test_webitels_disabled_auth_is_kept_as_given() -> None:
    auth = {"enabled": False, "url": "", "method": "GET", "headers": {}, "map": {}, "cookie": False}
    assert validate_hook(minimal(auth=auth))["auth"] == auth
    assert validate_hook(minimal(auth={"headers": {}, "map": {}, "enabled": False}))["auth"] == {
        "headers": {},
        "map": {},
        "enabled": False,
    }


def test_enabled_auth() -> None:
    auth = {
        "enabled": True,
        "url": "https://auth.example/login",
        "method": "post",
        "headers": {"X-Key": "${domain_name}"},
        "map": {"login": "${sip_from_user}"},
        "cookie": True,
        "ttl": 300,
    }
    assert validate_hook(minimal(auth=auth))["auth"] == auth


@pytest.mark.parametrize("url", ["/login", "ftp://a.example/"])
def test_enabled_auth_needs_an_http_url(url: Any) -> None:
    assert "auth.url" in rejected(minimal(auth={"enabled": True, "url": url}))


@pytest.mark.parametrize("auth", [{"enabled": True}, {"enabled": True, "url": ""}])
def test_enabled_auth_without_a_url_is_stored_and_runs_no_pre_request(auth: dict[str, Any]) -> None:
    doc = validate_hook(minimal(auth=auth, enable=True))
    assert doc["auth"] == auth
    assert Hook.compile(HOOK_ID, DOMAIN, doc).auth is None


def test_disabled_auth_with_a_bad_url_is_rejected() -> None:
    assert "auth.url" in rejected(minimal(auth={"enabled": False, "url": "not a url"}))


@pytest.mark.parametrize(
    ("auth", "field"),
    [
        ("yes", "auth must be an object"),
        ([], "auth must be an object"),
        ({"enabled": "true"}, "auth.enabled"),
        ({"enabled": 1}, "auth.enabled"),
        ({"cookie": "true"}, "auth.cookie"),
        ({"headers": "x"}, "auth.headers"),
        ({"map": ["b"]}, "auth.map"),
        ({"method": "HEAD"}, "auth.method"),
        ({"method": 5}, "auth.method"),
        ({"ttl": -1}, "auth.ttl"),
        ({"ttl": 86_401}, "auth.ttl"),
        ({"ttl": "60"}, "auth.ttl"),
    ],
)
def test_auth_fields_are_checked(auth: Any, field: str) -> None:
    assert field in rejected(minimal(auth=auth))


# --- filter --------------------------------------------------------------------------------------


def test_filter_is_validated_and_kept() -> None:
    spec = {
        "Answer-State": {"operation": "==", "value": "ringing"},
        "Caller-Caller-ID-Name": {"operation": "reg", "value": "/^user/i"},
    }
    assert validate_hook(minimal(filter=spec))["filter"] == spec


@pytest.mark.parametrize(
    "spec",
    [
        {"Answer-State": {"operation": "reg", "value": "("}},
        {"Answer-State": "ringing"},
    ],
)
def test_bad_filters_are_rejected_naming_the_key(spec: dict[str, Any]) -> None:
    assert "Answer-State" in rejected(minimal(filter=spec))


@pytest.mark.parametrize("spec", [[], "x", 1])
def test_filter_must_be_an_object(spec: Any) -> None:
    assert rejected(minimal(filter=spec)) == "Bad request: filter must be an object."


# --- public_view ---------------------------------------------------------------------------------


def test_public_view_puts_id_first_and_domain_from_the_caller() -> None:
    doc = validate_hook(copy.deepcopy(WEBITEL_HOOK))
    view = public_view(doc, HOOK_ID, DOMAIN)
    assert list(view) == ["_id", *WEBITEL_ORDER]
    assert view == {"_id": HOOK_ID, "domain": DOMAIN, **WEBITEL_HOOK}


def test_public_view_can_put_id_last() -> None:
    view = public_view(validate_hook(copy.deepcopy(WEBITEL_HOOK)), HOOK_ID, DOMAIN, id_first=False)
    assert list(view) == [*WEBITEL_ORDER, "_id"]


def test_public_view_masks_the_secret_and_orders_extensions_last() -> None:
    doc = validate_hook(minimal(secret=SECRET, ttl=60, timeout=5, enable=True))
    view = public_view(doc, HOOK_ID, DOMAIN)
    assert view["secret"] == SECRET_MASK
    assert SECRET not in repr(view)
    assert list(view) == ["_id", "domain", "event", "enable", "action", "timeout", "ttl", "secret"]
    assert doc["secret"] == SECRET  # the stored document is untouched


def test_public_view_ignores_unknown_stored_keys() -> None:
    view = public_view({"event": "X", "internal": 1, "domain": "stored.example"}, HOOK_ID, DOMAIN)
    assert view == {"_id": HOOK_ID, "domain": DOMAIN, "event": "X"}


def test_masked_view_round_trips_through_put() -> None:
    doc = validate_hook(minimal(secret=SECRET))
    view = public_view(doc, HOOK_ID, DOMAIN)
    assert validate_hook(view, previous_secret=doc["secret"]) == doc


# --- ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (HOOK_ID, True),
        ("0" * 24, True),
        (HOOK_ID.upper(), True),
        (HOOK_ID[:-1], False),
        (HOOK_ID + "0", False),
        ("g" * 24, False),
        (HOOK_ID + "\n", False),
        ("", False),
    ],
)
def test_is_hook_id(value: str, valid: bool) -> None:
    assert is_hook_id(value) is valid


# --- Hook ----------------------------------------------------------------------------------------


def test_hook_compile() -> None:
    doc = validate_hook(
        {**copy.deepcopy(WEBITEL_HOOK), "filter": {"variable_endCause": {"operation": "==", "value": "X"}}}
    )
    hook = Hook.compile(HOOK_ID, DOMAIN, doc)
    assert hook.id == HOOK_ID
    assert hook.domain == DOMAIN
    assert hook.event == "CUSTOM->engine::dialer_member_end"
    assert hook.enabled is True
    assert hook.delivers is True
    assert hook.doc is doc
    assert [c.key for c in hook.conditions] == ["variable_endCause"]
    assert passes(hook.conditions, {"variable_endCause": "X"}) is True
    assert passes(hook.conditions, {"variable_endCause": "Y"}) is False


@pytest.mark.parametrize("enable", [None, False, "true", 1])
def test_only_enable_true_delivers(enable: Any) -> None:
    doc = minimal() if enable is None else minimal(enable=enable)
    hook = Hook.compile(HOOK_ID, DOMAIN, doc)
    assert hook.enabled is False
    assert hook.delivers is False


def test_hook_without_action_does_not_deliver() -> None:
    hook = Hook.compile(HOOK_ID, DOMAIN, {"event": "X", "enable": True})
    assert hook.delivers is False
    assert hook.conditions == ()


def test_max_attempts_is_one_plus_retries() -> None:
    assert Hook.compile(HOOK_ID, DOMAIN, minimal(retries=0)).max_attempts(3) == 1
    assert Hook.compile(HOOK_ID, DOMAIN, minimal(retries=5)).max_attempts(3) == 6
    assert Hook.compile(HOOK_ID, DOMAIN, minimal(retries=100)).max_attempts(3) == 101
    assert Hook.compile(HOOK_ID, DOMAIN, minimal()).max_attempts(3) == 4
    assert Hook.compile(HOOK_ID, DOMAIN, minimal()).max_attempts(0) == 1


def test_delay_s() -> None:
    assert Hook.compile(HOOK_ID, DOMAIN, minimal(delay=60)).delay_s == 60.0
    assert Hook.compile(HOOK_ID, DOMAIN, minimal(delay=0.5)).delay_s == 0.5
    assert Hook.compile(HOOK_ID, DOMAIN, minimal(delay=0)).delay_s is None  # 0: exponential backoff
    assert Hook.compile(HOOK_ID, DOMAIN, minimal()).delay_s is None


def test_timeout_s() -> None:
    assert Hook.compile(HOOK_ID, DOMAIN, minimal(timeout=5)).timeout_s(15.0) == 5.0
    assert Hook.compile(HOOK_ID, DOMAIN, minimal()).timeout_s(15.0) == 15.0


def test_ttl_s() -> None:
    assert Hook.compile(HOOK_ID, DOMAIN, minimal(ttl=600)).ttl_s == 600.0
    assert Hook.compile(HOOK_ID, DOMAIN, minimal()).ttl_s is None


def test_compiled_hook_from_every_validated_document() -> None:
    doc = validate_hook(
        {
            **copy.deepcopy(WEBITEL_HOOK),
            "retries": 7,
            "delay": 30,
            "timeout": 2.5,
            "ttl": 3600,
            "secret": SECRET,
        }
    )
    hook = Hook.compile(HOOK_ID, DOMAIN, doc)
    assert (hook.max_attempts(3), hook.delay_s, hook.timeout_s(15.0), hook.ttl_s) == (8, 30.0, 2.5, 3600.0)


def test_hook_is_frozen() -> None:
    hook = Hook.compile(HOOK_ID, DOMAIN, minimal())
    with pytest.raises(AttributeError):
        hook.enabled = True  # type: ignore[misc]


def test_unknown_filter_operations_are_stored_and_never_pass() -> None:
    spec = {"Answer-State": {"operation": "~=", "value": "x"}, "Unique-ID": {"value": "y"}}
    doc = validate_hook(minimal(filter=spec, enable=True))
    assert doc["filter"] == spec
    hook = Hook.compile(HOOK_ID, DOMAIN, doc)
    assert passes(hook.conditions, {"Answer-State": "x", "Unique-ID": "y"}) is False
    assert hook.filter_notes is not None and set(hook.filter_notes) == {"Answer-State", "Unique-ID"}
    assert "never holds" in hook.filter_notes["Answer-State"]
    assert Hook.compile(HOOK_ID, DOMAIN, minimal(filter={})).filter_notes is None


# -- hostile tenants (issue 13): bounds checked at write time, before anything is compiled --------------------


def _with_filter(pattern: str) -> dict[str, Any]:
    return {**WEBITEL_HOOK, "filter": {"k": {"operation": "reg", "value": pattern}}}


@pytest.mark.parametrize(
    ("pattern", "size"),
    [
        ("abc", 3),
        ("(?:a{1500}){1500}", 2_250_000),  # the 19-byte bomb: the engine unrolls fixed counts
        ("(?:ab|cd){10}", 60),  # two branches of 2, one each for the branches
        ("x{10,1000}", 11),  # a range is not unrolled past its minimum
        ("(?:x{100,}){10}", 1010),
        ("[a-z]{32}", 32),
        ("[]{]{3}", 3),  # a class is one unit, whatever it holds
        (r"\{{5}", 5),
        ("(?#{9999})a", 1),
        ("(?P<n>ab){3}", 6),
        ("(?i)abc", 3),
    ],
)
def test_expanded_size_is_an_upper_bound_computed_without_compiling(pattern: str, size: int) -> None:
    assert expanded_size(pattern, 10**9) == size


@pytest.mark.parametrize(
    ("pattern", "said"),
    [
        ("(?:a{1500}){1500}", "repeats 1500 times"),
        ("a{99999999999999999999999}", "repeats 99999999999999999999999 times"),
        ("(?:a{1000}){1000}", "expands to 1000000 units"),
        ("/(?:a{100}){100}/i", "expands to 10000 units"),
        ("a" * 1001, "1001 characters long"),
    ],
)
def test_regexes_over_the_bounds_are_refused_before_compiling(pattern: str, said: str) -> None:
    with pytest.raises(InvalidHook, match=said):
        validate_hook(_with_filter(pattern))


def test_the_regex_bounds_of_a_hook_add_up_and_are_settings() -> None:
    many = {**WEBITEL_HOOK, "filter": {f"k{i}": {"operation": "reg", "value": "a{1000}"} for i in range(6)}}
    with pytest.raises(InvalidHook, match="together"):
        validate_hook(many)  # 6 x 1000 units, each pattern fine alone
    roomy = HookLimits(regex=RegexLimits(max_size=10_000))
    assert validate_hook(many, limits=roomy)["filter"] == many["filter"]
    with pytest.raises(InvalidHook, match="more than the 10 allowed"):
        validate_hook(_with_filter("a{11}"), limits=HookLimits(regex=RegexLimits(max_repeat=10)))


def test_a_stored_hook_over_todays_bounds_does_not_compile() -> None:
    with pytest.raises(InvalidHook, match="expands to"):
        Hook.compile(HOOK_ID, DOMAIN, _with_filter("(?:a{1000}){300}"))


def test_a_hook_document_is_capped_as_json() -> None:
    with pytest.raises(InvalidHook, match="more than the 65536 allowed"):
        validate_hook({**WEBITEL_HOOK, "description": "x" * 65_536})
    validate_hook({**WEBITEL_HOOK, "description": "x" * 60_000})
    with pytest.raises(InvalidHook, match="more than the 2048 allowed"):
        validate_hook({**WEBITEL_HOOK, "description": "x" * 3000}, limits=HookLimits(max_bytes=2048))


@pytest.mark.parametrize(
    "name",
    ["Transfer-Encoding", "content-length", "Connection", "Keep-Alive", "Upgrade", "TE", "Trailer", "Host", "Proxy-X"],
)
def test_framing_and_hop_by_hop_headers_are_refused_and_dropped_from_stored_hooks(name: str) -> None:
    assert is_connection_header(name)
    for body in (
        {**WEBITEL_HOOK, "headers": {name: "1"}},
        {**WEBITEL_HOOK, "auth": {"enabled": True, "url": "https://example.org/a", "headers": {name: "1"}}},
    ):
        with pytest.raises(InvalidHook, match=name):
            validate_hook(body)
    stored = {
        **WEBITEL_HOOK,
        "headers": {name: "1", "X-Kept": "yes"},
        "auth": {"enabled": True, "url": "https://example.org/a", "headers": {name: "1", "X-Auth": "a"}},
    }
    hook = Hook.compile(HOOK_ID, DOMAIN, stored)
    assert hook.doc["headers"] == {"X-Kept": "yes"}
    assert hook.auth is not None and hook.auth["headers"] == {"X-Auth": "a"}
    assert stored["headers"] == {name: "1", "X-Kept": "yes"}  # the stored document is not changed


def test_a_hook_without_such_headers_compiles_its_document_as_is() -> None:
    assert Hook.compile(HOOK_ID, DOMAIN, WEBITEL_HOOK).doc is WEBITEL_HOOK


@pytest.mark.parametrize("value", ["a\x00b", "a\x0bb", "a\rb", "a\nb", "a\x7fb", "\x1b[31m"])
def test_static_header_values_with_control_characters_are_refused(value: str) -> None:
    with pytest.raises(InvalidHook, match="control characters"):
        validate_hook({**WEBITEL_HOOK, "headers": {"X-Tag": value}})
    assert validate_hook({**WEBITEL_HOOK, "headers": {"X-Tag": "a\tb"}})["headers"] == {"X-Tag": "a\tb"}


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a/b",
        "a@b",
        "a b",
        "a\tb",
        "a\x00b",
        "a\x7fb",
        "a\x85b",
        "evil\u202eelpmaxe.com",
        "x\u202a.y",
        "x\u2066.y",
        "x\u2069.y",
        "x\u200e.y",
        "x\u200f.y",
        "x\u200b.y",
        "x\ufeff.y",
        "x\u2028.y",
        "x" * 254,
        None,
        7,
    ],
)
def test_domain_names_with_control_or_bidi_characters_are_refused(name: Any) -> None:
    with pytest.raises(ValidationFailed):
        validate_domain_name(name)


@pytest.mark.parametrize("name", ["demo.webitel.com", "10.0.0.1", "münchen.example", "x" * 253, "a_b-c"])
def test_ordinary_domain_names_pass(name: str) -> None:
    assert validate_domain_name(name) == name
