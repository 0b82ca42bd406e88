"""Templating and request building (docs/behaviour.md): lookups, escaping, envelope, GET query strings, auth."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

import pytest

from switchhook.core.render import (
    AuthRequest,
    RenderedRequest,
    auth_values,
    build_auth_request,
    build_data,
    build_request,
    escape_for,
    form_escape,
    header_escape,
    json_escape,
    json_template,
    lookup,
    lookup_exact_first,
    no_escape,
    query_string,
    render,
    render_json,
    render_mapping,
    to_text,
    with_query,
)
from tests.support.fixtures import load_fixture_event

DIALER_END = "esl-plain-decoded-CUSTOM-engine__dialer_member_end-webitel-docs-en.txt"
CALLBACK_ADD = "esl-plain-decoded-CUSTOM-engine__callback_member_add-webitel-docs-en.txt"
CHANNEL_CREATE = "amqp-json-CHANNEL_CREATE-kageds-mod_amqp-trace.json"
URL = "https://example.org/hook"
MESSAGE_ID = "msg_2c5e0bd1b3a94c51a0a1c2f3"
NASTY_NAME = 'O\'Brien "the \\ Boss"\nline two\ttab\x01\u2028 Ünïcødé 📞'


def request(**overrides: Any) -> RenderedRequest:
    """build_request with the defaults of a plain Webitel POST hook."""
    arguments: dict[str, Any] = {
        "method": "POST",
        "url": URL,
        "event_key": "CHANNEL_CREATE",
        "message_id": MESSAGE_ID,
        "event": {"Event-Name": "CHANNEL_CREATE", "Unique-ID": "u-1"},
        "auth_values": {},
        "header_templates": {},
        "fields": [],
        "renames": {},
        "custom_body": False,
        "raw_body": None,
    }
    arguments.update(overrides)
    return build_request(**arguments)


def body_json(rendered: RenderedRequest) -> Any:
    assert rendered.body is not None
    return json.loads(rendered.body)


# --- lookup and to_text --------------------------------------------------------------------------


def test_variable_prefix_wins_over_the_plain_name() -> None:
    event = {"variable_name": "from variable", "name": "plain"}
    assert lookup(event, "name") == "from variable"
    assert render("${name}", event) == "from variable"


def test_plain_name_when_there_is_no_variable() -> None:
    assert render("${name}", {"name": "plain"}) == "plain"
    assert render("${Caller-Destination-Number}", {"Caller-Destination-Number": "1001"}) == "1001"


def test_empty_variable_falls_back_to_the_plain_name() -> None:
    assert render("${name}", {"variable_name": "", "name": "plain"}) == "plain"
    assert render("${name}", {"variable_name": None, "name": "plain"}) == "plain"
    assert render("${name}", {"variable_name": ""}) == ""


def test_full_variable_name_also_works() -> None:
    assert render("${variable_domain_name}", {"variable_domain_name": "demo.webitel.com"}) == "demo.webitel.com"


def test_dotted_paths_walk_nested_objects() -> None:
    event = load_fixture_event(CALLBACK_ADD)
    assert render("${location.city}", event) == "Lviv"
    assert render("${location.country_code}", event) == "UA"
    assert render("${location.latitude}", event) == "49.8407"
    assert render("${location.metro_code}", event) == "0"
    assert render("${location.zip_code}", event) == ""
    assert render("${location.nope}", event) == ""
    assert render("${location.city.more}", event) == ""
    assert render("${logs.0.log}", event) == "Open page https://webitel.com/"
    assert render("${logs.99.log}", event) == ""
    assert render("${nothing.here}", event) == ""


def test_dotted_path_prefers_variable_for_its_first_part() -> None:
    event = {"variable_location": {"city": "Kyiv"}, "location": {"city": "Lviv"}}
    assert render("${location.city}", event) == "Kyiv"


def test_a_key_containing_a_dot_is_looked_up_before_walking() -> None:
    assert render("${a.b}", {"a.b": "flat", "a": {"b": "nested"}}) == "flat"


def test_missing_values_render_empty() -> None:
    assert render("[${missing}]", {}) == "[]"
    assert render("[${missing}]", {"missing": None}) == "[]"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (False, "false"),
        (True, "true"),
        (0.0, "0.0"),
        (12, "12"),
        (1.5, "1.5"),
        ("", ""),
        (None, ""),
        ({"a": 1, "b": "é"}, '{"a":1,"b":"é"}'),
        ([1, "x"], '[1,"x"]'),
    ],
)
def test_to_text(value: Any, text: str) -> None:
    assert to_text(value) == text
    assert render("${v}", {"v": value}) == text


def test_zero_and_false_are_values_not_missing() -> None:
    event = {"variable_count": 0, "count": "ignored", "flag": False}
    assert render("${count}/${flag}", event) == "0/false"


def test_a_template_without_placeholders_is_returned_as_is() -> None:
    assert render("plain text $ {x} $x {x}", {"x": "1"}) == "plain text $ {x} $x {x}"
    assert render("", {"x": "1"}) == ""


def test_several_placeholders_and_unclosed_ones() -> None:
    event = {"a": "1", "b": "2"}
    assert render("${a}-${b}-${a}", event) == "1-2-1"
    assert render("${a", event) == "${a"
    assert render("${}", event) == ""


def test_rendering_is_not_recursive() -> None:
    assert render("${a}", {"a": "${b}", "b": "secret"}) == "${b}"


def test_render_mapping_drops_non_string_values() -> None:
    rendered = render_mapping({"a": "${x}", "b": 5, "c": None, "d": "lit"}, {"x": "1"}, no_escape)
    assert rendered == {"a": "1", "d": "lit"}


# --- escaping ------------------------------------------------------------------------------------


def test_escape_for_picks_by_content_type() -> None:
    assert escape_for("application/json") is json_escape
    assert escape_for("Application/JSON; charset=utf-8") is json_escape
    assert escape_for("application/vnd.api+json") is json_escape
    assert escape_for("application/x-www-form-urlencoded") is form_escape
    assert escape_for("text/plain") is no_escape
    assert escape_for("application/xml") is no_escape
    assert escape_for("") is no_escape


def test_json_escape_round_trips() -> None:
    assert json.loads('"' + json_escape(NASTY_NAME) + '"') == NASTY_NAME
    assert json_escape('a"b') == 'a\\"b'
    assert json_escape("a\\b") == "a\\\\b"
    assert json_escape("a\nb") == "a\\nb"
    assert json_escape("é") == "é"  # not \u escaped: the body stays readable


def test_json_escape_of_a_lone_surrogate_stays_valid_and_exact() -> None:
    # Python's json module turns "\ud83d" into a lone surrogate, which has no UTF-8 form.
    text = json_escape("x\ud83dy")
    assert json.loads('"' + text + '"') == "x\ud83dy"
    text.encode()


def test_json_raw_body_with_a_nasty_caller_name_is_valid_json() -> None:
    event = {"Event-Name": "CHANNEL_CREATE", "Caller-Caller-ID-Name": NASTY_NAME, "Unique-ID": "u-1"}
    rendered = request(
        event=event,
        custom_body=True,
        raw_body='{"caller": "${Caller-Caller-ID-Name}", "id": "${Unique-ID}"}',
    )
    assert body_json(rendered) == {"caller": NASTY_NAME, "id": "u-1"}
    assert rendered.json_body is True
    assert rendered.headers["Content-Type"] == "application/json"
    assert rendered.notes == []


def test_json_raw_body_with_webitels_example() -> None:
    event = load_fixture_event(DIALER_END)
    rendered = request(
        event=event,
        event_key="CUSTOM->engine::dialer_member_end",
        custom_body=True,
        raw_body='{ "dlr_id": "${dlr_id}", "end_cause": "${endCause}", "name": "${name}" }',
        header_templates={"Content-Type": "application/json"},
    )
    assert body_json(rendered) == {"dlr_id": "", "end_cause": "MAX_TRY_COUNT", "name": "Customer 1"}
    assert rendered.headers == {"Content-Type": "application/json", "Accept": "application/json"}


def test_json_raw_body_with_unquoted_numbers_and_booleans() -> None:
    rendered = request(
        event={"n": 0, "f": False, "probe": "2"},
        custom_body=True,
        raw_body='{"n": ${n}, "f": ${f}, "probe": ${probe}}',
    )
    assert body_json(rendered) == {"n": 0, "f": False, "probe": 2}


def test_form_body_is_url_encoded() -> None:
    event = {"name": 'a&b=c d+é/"', "n": "1"}
    rendered = request(
        event=event,
        custom_body=True,
        raw_body="name=${name}&n=${n}",
        header_templates={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert rendered.body == b"name=a%26b%3Dc%20d%2B%C3%A9%2F%22&n=1"
    assert parse_qs(rendered.body.decode()) == {"name": ['a&b=c d+é/"'], "n": ["1"]}
    assert rendered.headers == {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    assert rendered.json_body is False


def test_text_plain_body_is_not_escaped() -> None:
    rendered = request(
        event={"name": 'a "quoted" \\ name\n&x=1'},
        custom_body=True,
        raw_body="Caller: ${name}",
        header_templates={"content-type": "text/plain"},
    )
    assert rendered.body == b'Caller: a "quoted" \\ name\n&x=1'
    assert rendered.headers == {"content-type": "text/plain", "Accept": "application/json"}
    assert rendered.json_body is False
    assert rendered.notes


def test_raw_body_that_is_not_json_is_sent_verbatim_as_text_plain() -> None:
    rendered = request(event={"x": "1"}, custom_body=True, raw_body="x is ${x}")
    assert rendered.body == b"x is 1"
    assert rendered.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert rendered.json_body is False
    assert rendered.notes == ["rawBody did not render to JSON: sent verbatim"]


def test_raw_body_that_is_not_json_keeps_the_hooks_content_type() -> None:
    rendered = request(
        event={"x": "1"},
        custom_body=True,
        raw_body="<x>${x}</x>",
        header_templates={"Content-Type": "application/xml"},
    )
    assert rendered.body == b"<x>1</x>"
    assert rendered.headers == {"Content-Type": "application/xml", "Accept": "application/json"}


def test_raw_body_that_renders_to_broken_json_is_still_sent() -> None:
    # JSON escaping (the default) applies, but the template itself is broken.
    rendered = request(event={"x": "1"}, custom_body=True, raw_body='{"x": ${x}')
    assert rendered.body == b'{"x": 1'
    assert rendered.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_raw_body_null_and_scalars_are_json() -> None:
    assert request(custom_body=True, raw_body="null").json_body is True
    assert request(custom_body=True, raw_body="42").headers["Content-Type"] == "application/json"
    assert request(custom_body=True, raw_body='"s"').json_body is True


def test_custom_body_without_raw_body_sends_the_envelope() -> None:
    for raw in (None, 5, {"a": 1}):
        rendered = request(custom_body=True, raw_body=raw)
        assert set(body_json(rendered)) == {"id", "action", "data"}


def test_raw_body_ignored_when_custom_body_is_false() -> None:
    rendered = request(custom_body=False, raw_body='{"custom": true}')
    assert set(body_json(rendered)) == {"id", "action", "data"}


def test_raw_body_with_a_lone_surrogate_in_the_event_still_encodes() -> None:
    rendered = request(event={"x": "a\udc80b"}, custom_body=True, raw_body='{"x": "${x}"}')
    assert body_json(rendered) == {"x": "a\udc80b"}
    plain = request(
        event={"x": "a\udc80b"},
        custom_body=True,
        raw_body="${x}",
        header_templates={"Content-Type": "text/plain"},
    )
    assert plain.body == b"a?b"


def test_raw_body_sees_auth_values() -> None:
    rendered = request(
        custom_body=True,
        raw_body='{"token": "${auth:body:token}", "id": "${Unique-ID}"}',
        auth_values={"auth:body:token": 'to"ken'},
    )
    assert body_json(rendered) == {"token": 'to"ken', "id": "u-1"}


# --- default envelope ----------------------------------------------------------------------------


def test_default_envelope_holds_the_whole_event() -> None:
    event = load_fixture_event(CHANNEL_CREATE)
    rendered = request(event=event)
    assert rendered.method == "POST"
    assert rendered.url == URL
    assert rendered.json_body is True
    assert rendered.headers == {"Accept": "application/json", "Content-Type": "application/json"}
    assert body_json(rendered) == {"id": MESSAGE_ID, "action": "CHANNEL_CREATE", "data": event}
    assert list(body_json(rendered)) == ["id", "action", "data"]
    assert list(body_json(rendered)["data"]) == list(event)


def test_default_envelope_is_compact_utf8() -> None:
    rendered = request(event={"name": "Ünï"})
    assert rendered.body is not None
    assert b"\xc3\x9c" in rendered.body
    assert b", " not in rendered.body


def test_fields_select_top_level_keys() -> None:
    event = load_fixture_event(CHANNEL_CREATE)
    rendered = request(event=event, fields=["Unique-ID", "Answer-State", "No-Such-Key"])
    assert body_json(rendered)["data"] == {"Unique-ID": "66717c2c66232d6e", "Answer-State": "ringing"}


def test_map_renames_keys_without_touching_the_event() -> None:
    event = load_fixture_event(CHANNEL_CREATE)
    before = copy.deepcopy(event)
    rendered = request(
        event=event,
        fields=["Unique-ID", "Caller-Destination-Number", "Answer-State"],
        renames={"Unique-ID": "uuid", "Caller-Destination-Number": "to", "Missing": "nothing"},
    )
    assert body_json(rendered)["data"] == {
        "Answer-State": "ringing",
        "uuid": "66717c2c66232d6e",
        "to": "1001",
    }
    assert event == before


def test_map_identity_is_a_no_op() -> None:
    event = {"a": "1", "b": "2"}
    assert build_data(event, [], {"a": "a"}) == {"a": "1", "b": "2"}
    assert list(build_data(event, [], {"a": "a"})) == ["a", "b"]


def test_map_without_fields_renames_in_the_whole_event() -> None:
    event = {"a": "1", "b": "2"}
    data = build_data(event, [], {"a": "x"})
    assert data == {"b": "2", "x": "1"}
    assert event == {"a": "1", "b": "2"}
    data["b"] = "changed"
    assert event["b"] == "2"


def test_map_can_overwrite_an_existing_key() -> None:
    assert build_data({"a": "1", "b": "2"}, [], {"a": "b"}) == {"b": "1"}


def test_auth_values_never_leak_into_data() -> None:
    rendered = request(auth_values={"auth:body:token": "t", "auth:cookie": "s=1"})
    assert "auth:body:token" not in body_json(rendered)["data"]
    assert body_json(rendered)["data"] == {"Event-Name": "CHANNEL_CREATE", "Unique-ID": "u-1"}


def test_envelope_with_non_finite_numbers_is_still_strict_json() -> None:
    # Python's json module accepts NaN/Infinity in events; receivers' parsers do not.
    rendered = request(event={"a": float("nan"), "b": [float("inf")], "c": {"d": 1.5}})
    assert rendered.body is not None
    assert json.loads(rendered.body, parse_constant=pytest.fail) == {
        "id": MESSAGE_ID,
        "action": "CHANNEL_CREATE",
        "data": {"a": None, "b": [None], "c": {"d": 1.5}},
    }


def test_envelope_with_a_lone_surrogate_is_still_valid() -> None:
    rendered = request(event={"name": "x\ud800y", "city": "Київ"})
    assert rendered.body is not None
    rendered.body.decode("utf-8")
    assert body_json(rendered)["data"] == {"name": "x\ud800y", "city": "Київ"}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "post", "Put"])
def test_non_get_methods_send_the_body(method: str) -> None:
    rendered = request(method=method)
    assert rendered.method == method.upper()
    assert rendered.body is not None
    assert rendered.url == URL


def test_hooks_content_type_is_kept_for_the_envelope() -> None:
    rendered = request(header_templates={"content-type": "application/vnd.x+json"})
    assert rendered.headers == {"content-type": "application/vnd.x+json", "Accept": "application/json"}
    assert "Content-Type" not in rendered.headers


# --- GET -----------------------------------------------------------------------------------------


def test_get_sends_data_as_query_string_and_no_body() -> None:
    event = {"Event-Name": "CHANNEL_CREATE", "Unique-ID": "u 1&x=2", "name": "Ünï"}
    rendered = request(method="get", event=event)
    assert rendered.method == "GET"
    assert rendered.body is None
    assert rendered.json_body is False
    assert "Content-Type" not in rendered.headers
    parts = urlsplit(rendered.url)
    assert parts._replace(query="").geturl() == URL
    assert dict(parse_qsl(parts.query, keep_blank_values=True)) == event  # no id/action envelope


def test_get_query_uses_fields_and_map() -> None:
    rendered = request(method="GET", fields=["Unique-ID"], renames={"Unique-ID": "uuid"})
    assert rendered.url == URL + "?uuid=u-1"


def test_get_nests_like_qs() -> None:
    event = {"a": {"b": "c", "d": {"e": "f"}}, "l": ["x", {"y": "z"}], "n": 0, "t": True, "none": None}
    rendered = request(method="GET", event=event)
    query = urlsplit(rendered.url).query
    assert unquote(query) == "a[b]=c&a[d][e]=f&l[0]=x&l[1][y]=z&n=0&t=true&none="
    assert parse_qsl(query, keep_blank_values=True) == [
        ("a[b]", "c"),
        ("a[d][e]", "f"),
        ("l[0]", "x"),
        ("l[1][y]", "z"),
        ("n", "0"),
        ("t", "true"),
        ("none", ""),
    ]


def test_get_appends_to_a_url_that_already_has_a_query() -> None:
    rendered = request(method="GET", url="https://example.org/hook?token=abc#frag", fields=["Unique-ID"])
    assert rendered.url == "https://example.org/hook?token=abc&Unique-ID=u-1#frag"


def test_get_with_nothing_to_send_keeps_the_url() -> None:
    assert request(method="GET", event={}, url=URL + "?a=1").url == URL + "?a=1"
    assert request(method="GET", event={}).url == URL


def test_get_with_a_json_object_raw_body_sends_it_as_query() -> None:
    rendered = request(
        method="GET",
        custom_body=True,
        raw_body='{"id": "${Unique-ID}", "q": "a b"}',
        event={"Unique-ID": "u&1"},
    )
    assert rendered.body is None
    assert parse_qsl(urlsplit(rendered.url).query) == [("id", "u&1"), ("q", "a b")]


def test_query_string_and_with_query() -> None:
    assert query_string({}) == ""
    assert query_string({"a b": "c&d"}) == "a%20b=c%26d"
    assert with_query(URL, "") == URL
    assert with_query(URL, "a=1") == URL + "?a=1"
    assert with_query(URL + "?x=0", "a=1") == URL + "?x=0&a=1"
    assert with_query("http://h:8080/p?", "a=1") == "http://h:8080/p?a=1"


def test_query_string_survives_a_lone_surrogate() -> None:
    assert query_string({"a": "x\ud800"}) == "a=x%3F"


# --- headers -------------------------------------------------------------------------------------


def test_header_templates_render_with_the_same_rules() -> None:
    event = {
        "variable_domain_name": "demo.webitel.com",
        "Unique-ID": "u-1",
        "location": {"city": "Lviv"},
        "n": 0,
    }
    rendered = request(
        event=event,
        header_templates={
            "X-Domain": "${domain_name}",
            "X-Call": "call ${Unique-ID}",
            "X-City": "${location.city}",
            "X-N": "${n}",
            "X-Missing": "[${nope}]",
            "X-Ignored": 5,
        },
    )
    assert rendered.headers == {
        "X-Domain": "demo.webitel.com",
        "X-Call": "call u-1",
        "X-City": "Lviv",
        "X-N": "0",
        "X-Missing": "[]",
        "Accept": "application/json",
        "Content-Type": "application/json",
    }


def test_header_values_never_contain_line_breaks() -> None:
    event = {"name": "evil\r\nX-Injected: 1\nmore\rend"}
    rendered = request(
        event=event,
        header_templates={"X-Name": "${name}", "X-Literal": "a\r\nb: c", "X-Both": "\n${name}\r"},
        auth_values={"auth:cookie": "s=1\r\nX-Bad: 1"},
    )
    for value in rendered.headers.values():
        assert "\r" not in value
        assert "\n" not in value
    assert rendered.headers["X-Name"] == "evil  X-Injected: 1 more end"
    assert rendered.headers["X-Literal"] == "a  b: c"


def test_header_escape() -> None:
    assert header_escape("a\r\nb") == "a  b"
    assert header_escape("plain") == "plain"
    assert header_escape("x\ud800") == "x\ufffd"


def test_header_values_are_not_json_escaped() -> None:
    rendered = request(event={"name": 'a "b" \\ c'}, header_templates={"X-Name": "${name}"})
    assert rendered.headers["X-Name"] == 'a "b" \\ c'


def test_auth_values_are_usable_in_headers() -> None:
    rendered = request(
        header_templates={"Authorization": "Bearer ${auth:body:token}", "X-Sess": "${auth:header:x-session}"},
        auth_values={"auth:body:token": "tok-123", "auth:header:x-session": "s-9"},
    )
    assert rendered.headers["Authorization"] == "Bearer tok-123"
    assert rendered.headers["X-Sess"] == "s-9"


def test_auth_cookie_is_forwarded_as_cookie() -> None:
    rendered = request(auth_values={"auth:cookie": "sid=abc; lang=en"})
    assert rendered.headers["Cookie"] == "sid=abc; lang=en"


def test_hooks_own_cookie_header_wins() -> None:
    rendered = request(header_templates={"cookie": "mine=1"}, auth_values={"auth:cookie": "sid=abc"})
    assert rendered.headers == {"cookie": "mine=1", "Accept": "application/json", "Content-Type": "application/json"}


def test_build_request_does_not_mutate_its_inputs() -> None:
    event = {"Event-Name": "X", "a": {"b": "c"}}
    templates = {"X-A": "${a.b}"}
    auth = {"auth:cookie": "s=1"}
    frozen = copy.deepcopy((event, templates, auth))
    request(event=event, header_templates=templates, auth_values=auth, renames={"a": "z"})
    request(event=event, header_templates=templates, auth_values=auth, method="GET")
    assert (event, templates, auth) == frozen


# --- auth pre-request ----------------------------------------------------------------------------


def test_auth_request_get_sends_map_as_query_parameters() -> None:
    auth = {
        "enabled": True,
        "url": "https://auth.example.org/login",
        "headers": {"X-Domain": "${domain_name}", "X-Bad": "a\r\nb"},
        "map": {"user": "${sip_from_user}", "const": "1", "skip": 7},
    }
    event = {"variable_domain_name": "demo.webitel.com", "variable_sip_from_user": "1000&x"}
    built = build_auth_request(auth, event)
    assert built == AuthRequest(
        method="GET",
        url="https://auth.example.org/login",
        headers={"X-Domain": "demo.webitel.com", "X-Bad": "a  b", "Accept": "application/json"},
        query={"user": "1000&x", "const": "1"},
        json_body=None,
    )


@pytest.mark.parametrize("method", ["POST", "post", "PUT"])
def test_auth_request_other_methods_send_map_as_json_body(method: str) -> None:
    auth = {"url": "https://auth.example.org/login", "method": method, "map": {"user": '${name}"'}}
    built = build_auth_request(auth, {"name": "a\\b"})
    assert built.method == method.upper()
    assert built.query == {}
    assert built.json_body == {"user": 'a\\b"'}  # raw values: the caller serializes the JSON
    assert built.headers == {"Accept": "application/json"}


def test_auth_request_defaults_to_get_without_headers_or_map() -> None:
    built = build_auth_request({"url": "https://a.example.org/", "method": None, "headers": None}, {})
    assert built == AuthRequest("GET", "https://a.example.org/", {"Accept": "application/json"}, {}, None)


# --- auth values from the auth response ----------------------------------------------------------


def test_auth_values_from_a_json_body() -> None:
    body = json.dumps(
        {
            "token": "abc",
            "expires": 3600,
            "ok": True,
            "ratio": 0.5,
            "nested": {"a": 1},
            "list": [1],
            "n": None,
        }
    ).encode()
    values = auth_values([("Content-Type", "application/json")], body, "application/json", False)
    assert values == {
        "auth:header:content-type": "application/json",
        "auth:body:token": "abc",
        "auth:body:expires": "3600",
        "auth:body:ok": "true",
        "auth:body:ratio": "0.5",
    }


def test_auth_values_parse_a_json_looking_body_without_content_type() -> None:
    assert auth_values([], b'{"token": "t"}', "", False) == {"auth:body:token": "t"}
    assert auth_values([], b"token=t", "text/plain", False) == {}


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'"str"', b"\xff\xfe{", b"[" * 100_000, b"", b"{" + b"x" * 10]
)
def test_auth_values_ignore_bodies_that_are_not_a_json_object(body: bytes) -> None:
    assert auth_values([], body, "application/json", False) == {}


def test_auth_values_from_headers_are_lower_cased() -> None:
    values = auth_values([("X-Session", "s-1"), ("ETag", '"v1"')], b"", "", False)
    assert values == {"auth:header:x-session": "s-1", "auth:header:etag": '"v1"'}


def test_set_cookie_values_and_forwarded_cookie() -> None:
    headers = [
        ("Set-Cookie", "sid=abc123; Path=/; HttpOnly; Secure"),
        ("set-cookie", "lang=en; Max-Age=60"),
        ("X-Other", "1"),
    ]
    values = auth_values(headers, b"", "", True)
    assert values["auth:cookie"] == "sid=abc123; lang=en"
    assert values["auth:header:sid"] == "abc123"
    assert values["auth:header:lang"] == "en"
    assert values["auth:header:set-cookie"] == "sid=abc123; Path=/; HttpOnly; Secure;lang=en; Max-Age=60"
    assert values["auth:header:x-other"] == "1"


def test_cookie_is_only_forwarded_when_asked() -> None:
    values = auth_values([("Set-Cookie", "sid=abc; Path=/")], b"", "", False)
    assert "auth:cookie" not in values
    assert values["auth:header:sid"] == "abc"


def test_no_cookie_without_set_cookie() -> None:
    assert "auth:cookie" not in auth_values([("X-A", "1")], b"", "", True)


def test_auth_response_end_to_end_into_the_main_request() -> None:
    values = auth_values(
        [("Set-Cookie", "sid=abc; HttpOnly"), ("Content-Type", "application/json")],
        b'{"access_token": "tok"}',
        "application/json; charset=utf-8",
        True,
    )
    rendered = request(header_templates={"Authorization": "Bearer ${auth:body:access_token}"}, auth_values=values)
    assert rendered.headers == {
        "Authorization": "Bearer tok",
        "Accept": "application/json",
        "Cookie": "sid=abc",
        "Content-Type": "application/json",
    }


def test_get_query_template_values_cannot_inject_parameters() -> None:
    from switchhook.core.render import build_request

    request = build_request(
        method="GET",
        url="http://h/x",
        event_key="E",
        message_id="m",
        event={"n": "1&admin=true"},
        auth_values={},
        header_templates={},
        fields=[],
        renames={},
        custom_body=True,
        raw_body="n=${n}&k=v",
    )
    assert request.url == "http://h/x?n=1%26admin%3Dtrue&k=v"


def test_pathologically_nested_values_never_crash_request_building() -> None:
    from switchhook.core.render import build_request

    deep = "[" * 100_000
    for method in ("POST", "GET"):
        request = build_request(
            method=method,
            url="http://h/x",
            event_key="E",
            message_id="m",
            event={"v": deep},
            auth_values={},
            header_templates={},
            fields=[],
            renames={},
            custom_body=True,
            raw_body='{"x": ${v}}',
        )
        assert request.method == method
    nested: object = "leaf"
    for _ in range(200):
        nested = {"k": nested}
    get = build_request(
        method="GET",
        url="http://h/x",
        event_key="E",
        message_id="m",
        event={"n": nested},
        auth_values={},
        header_templates={},
        fields=[],
        renames={},
        custom_body=False,
        raw_body=None,
    )
    assert get.url.startswith("http://h/x?n")


# --- rawBody: verbatim outside JSON string literals, escaped inside --------------------------------


def test_a_json_text_value_outside_a_string_literal_nests() -> None:
    payload = '{"a": [1, "x"], "b": {"c": null}}'
    rendered = request(event={"payload": payload}, custom_body=True, raw_body='{"obj": ${payload}}')
    assert body_json(rendered) == {"obj": {"a": [1, "x"], "b": {"c": None}}}
    assert rendered.json_body is True


def test_the_same_value_inside_a_string_literal_stays_a_string() -> None:
    payload = '{"a": 1}'
    rendered = request(
        event={"payload": payload}, custom_body=True, raw_body='{"text": "${payload}", "obj": ${payload}}'
    )
    assert body_json(rendered) == {"text": payload, "obj": {"a": 1}}


def test_string_state_follows_escaped_quotes_in_the_template() -> None:
    template = '{"q": "say \\"${x}\\" now", "raw": ${n}, "k\\\\": "${x}"}'
    rendered = request(event={"x": 'he said "hi"', "n": "7"}, custom_body=True, raw_body=template)
    assert body_json(rendered) == {"q": 'say "he said "hi"" now', "raw": 7, "k\\": 'he said "hi"'}


def test_placeholders_in_keys_and_arrays() -> None:
    template = '{"${key}": [${a}, "${b}"]}'
    rendered = request(event={"key": 'k"1', "a": "[1,2]", "b": "]"}, custom_body=True, raw_body=template)
    assert body_json(rendered) == {'k"1': [[1, 2], "]"]}


def test_json_template_is_split_once_and_cached() -> None:
    template = '{"a": "${x}", "b": ${y}}'
    parts = json_template(template)
    assert parts == (('{"a": "', "x", True), ('", "b": ', "y", False), ("}", None, False))
    assert json_template(template) is parts


def test_render_json_without_placeholders_returns_the_template() -> None:
    assert render_json('{"a": 1}', {}) == '{"a": 1}'


def test_a_raw_body_that_does_not_render_to_json_is_sent_as_text_with_a_note() -> None:
    rendered = request(event={}, custom_body=True, raw_body='{"obj": ${missing}}')
    assert rendered.body == b'{"obj": }'
    assert rendered.json_body is False
    assert rendered.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert rendered.notes == ["rawBody did not render to JSON: sent verbatim"]


# --- header templates: exact key first, then variable_<key> --------------------------------------


def test_header_templates_try_the_exact_key_before_the_variable() -> None:
    event = {"domain_name": "plain.example", "variable_domain_name": "variable.example", "variable_only": "v"}
    rendered = request(event=event, header_templates={"X-D": "${domain_name}", "X-O": "${only}"})
    assert rendered.headers["X-D"] == "plain.example"
    assert rendered.headers["X-O"] == "v"
    assert lookup_exact_first(event, "domain_name") == "plain.example"
    assert lookup(event, "domain_name") == "variable.example"  # rawBody keeps Webitel's variable_ first


def test_header_templates_fall_back_to_the_variable_when_the_exact_key_is_empty() -> None:
    assert lookup_exact_first({"x": "", "variable_x": "v"}, "x") == "v"
    assert lookup_exact_first({"x": None, "variable_x": "v"}, "x") == "v"
    assert lookup_exact_first({}, "x") is None


def test_auth_headers_and_map_use_the_header_lookup() -> None:
    auth = {"url": "https://a.example.org/", "headers": {"X-U": "${user}"}, "map": {"u": "${user}"}}
    built = build_auth_request(auth, {"user": "exact", "variable_user": "variable"})
    assert built.headers["X-U"] == "exact"
    assert built.query == {"u": "exact"}


# --- Accept and GET query merging ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_every_request_accepts_json(method: str) -> None:
    assert request(method=method).headers["Accept"] == "application/json"


def test_a_hooks_own_accept_header_wins() -> None:
    rendered = request(header_templates={"accept": "text/plain"})
    assert rendered.headers["accept"] == "text/plain"
    assert "Accept" not in rendered.headers


def test_a_url_parameter_named_as_an_event_field_is_replaced_not_repeated() -> None:
    rendered = request(method="GET", url=URL + "?token=t&Unique-ID=old&x=1", event={"Unique-ID": "u-1"})
    assert rendered.url == URL + "?token=t&Unique-ID=u-1&x=1"


def test_query_merge_keeps_order_and_drops_repeats() -> None:
    assert with_query(URL + "?a=1&b=2&a=3", "a=9&c=4") == URL + "?a=9&b=2&c=4"
    assert with_query(URL + "?a%5Bx%5D=1&b=2", "a%5By%5D=5") == URL + "?a%5By%5D=5&b=2"  # qs nesting: same `a`
    assert with_query(URL + "?a+b=1&flag", "a%20b=2") == URL + "?a%20b=2&flag"
    assert with_query(URL + "?x=1#frag", "y=2") == URL + "?x=1&y=2#frag"
