"""Property tests of templating and filters: valid JSON bodies, no exceptions, comparisons as in JavaScript."""

from __future__ import annotations

import decimal
import json
import math
from typing import Any
from urllib.parse import parse_qsl

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchhook.core.errors import InvalidHook
from switchhook.core.filters import OPERATIONS, Condition, check, compile_filter, explain, passes
from switchhook.core.render import (
    build_request,
    form_escape,
    header_escape,
    json_escape,
    no_escape,
    query_string,
    render,
)

FEW = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Whole requests are the costliest example: fewer of them keeps the test near 1.5 s.
SOME = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Every code point, lone surrogates included (Python's json module can put them into an event).
any_char = st.characters(codec=None, exclude_categories=())
any_text = st.text(any_char, max_size=40)
# Text that has a UTF-8 form: what the property about JSON values compares exactly.
utf8_text = st.text(st.characters(codec="utf-8"), max_size=40)
# Python's json module reads integers of any size: they must not overflow float conversions.
big_integers = st.integers(min_value=-(10**400), max_value=10**400)
json_scalars = st.none() | st.booleans() | st.integers() | big_integers | st.floats() | any_text
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3),
    max_leaves=10,
)
names = st.text(st.characters(codec="utf-8", exclude_characters="}"), max_size=12)
events = st.dictionaries(any_text | names, json_values, max_size=6)
templates = st.lists(
    st.one_of(any_text, names.map(lambda name: "${" + name + "}"), st.just("${"), st.just("}")), max_size=8
).map("".join)
numeric_strings = st.one_of(
    st.integers(min_value=-(10**15), max_value=10**15).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6).map(lambda f: f"{f:.4f}"),
)


@FEW
@given(x=utf8_text, y=utf8_text)
def test_json_template_with_any_values_is_valid_json_with_those_values(x: str, y: str) -> None:
    template = '{"a": "${x}", "b": "${y}"}'
    text = render(template, {"x": x, "variable_y": y}, json_escape)
    assert json.loads(text) == {"a": x, "b": y}


@FEW
@given(x=any_text, y=any_text)
def test_json_raw_body_with_any_values_is_sent_as_json(x: str, y: str) -> None:
    rendered = build_request(
        method="POST",
        url="https://example.org/h",
        event_key="E",
        message_id="m",
        event={"x": x, "y": y},
        auth_values={},
        header_templates={"X-Y": "${y}"},
        fields=[],
        renames={},
        custom_body=True,
        raw_body='{"a": "${x}", "b": "${y}"}',
    )
    assert rendered.body is not None
    assert rendered.json_body is True
    assert json.loads(rendered.body.decode("utf-8")) == {"a": x, "b": y}
    assert "\r" not in rendered.headers["X-Y"]
    assert "\n" not in rendered.headers["X-Y"]


@SOME
@given(template=templates, context=events)
def test_render_never_raises(template: str, context: dict[str, Any]) -> None:
    for escape in (json_escape, form_escape, no_escape, header_escape):
        assert isinstance(render(template, context, escape), str)


@SOME
@given(
    event=events,
    method=st.sampled_from(["GET", "POST", "PUT", "delete"]),
    raw_body=st.none() | templates,
    headers=st.dictionaries(names, templates, max_size=3),
    fields=st.lists(any_text, max_size=3),
    renames=st.dictionaries(any_text, any_text, max_size=3),
)
def test_build_request_never_raises_and_always_encodes(
    event: dict[str, Any],
    method: str,
    raw_body: str | None,
    headers: dict[str, str],
    fields: list[str],
    renames: dict[str, str],
) -> None:
    rendered = build_request(
        method=method,
        url="https://example.org/h?x=1",
        event_key="E",
        message_id="m",
        event=event,
        auth_values={},
        header_templates=headers,
        fields=fields,
        renames=renames,
        custom_body=raw_body is not None,
        raw_body=raw_body,
    )
    for value in rendered.headers.values():
        assert "\r" not in value
        assert "\n" not in value
    if rendered.body is not None:
        rendered.body.decode("utf-8")
    if raw_body is None and rendered.method != "GET":
        assert rendered.body is not None
        assert set(json.loads(rendered.body)) == {"id", "action", "data"}


@MANY
@given(data=st.dictionaries(utf8_text, utf8_text, max_size=8))
def test_query_string_round_trips_through_parse_qsl(data: dict[str, str]) -> None:
    assert parse_qsl(query_string(data), keep_blank_values=True) == list(data.items())


@MANY
@given(
    operation=st.sampled_from(OPERATIONS),
    value=st.none() | st.booleans() | st.integers() | big_integers | st.floats() | any_text,
    event=st.dictionaries(st.sampled_from(["k", "other"]), json_values, max_size=2),
)
def test_check_never_raises_for_compiled_conditions(operation: str, value: Any, event: dict[str, Any]) -> None:
    try:
        conditions = compile_filter({"k": {"operation": operation, "value": value}})
    except InvalidHook:
        assert operation == "reg"
        return
    assert isinstance(check(conditions[0], event), bool)
    assert isinstance(passes(conditions, event), bool)
    assert explain(conditions, event) == {"k": check(conditions[0], event)}


def _js_number_model(value: str | int | float) -> float:
    """A reference model of JS Number() written apart from filters.py: Decimal parsing, explicit prefixes."""
    if not isinstance(value, str):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    text = value.strip(
        "\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff" + "".join(map(chr, range(0x2000, 0x200B)))
    )
    if text == "":
        return 0.0
    for prefix, alphabet in (("0x", "0123456789abcdefABCDEF"), ("0o", "01234567"), ("0b", "01")):
        if text[:2].lower() == prefix:
            body = text[2:]
            if not body or any(c not in alphabet for c in body):
                return math.nan
            try:
                return float(int(body, len(alphabet) if prefix != "0x" else 16))
            except OverflowError:
                return math.inf
    unsigned = text.lstrip("+-") if text[:1] in "+-" else text
    if text[1:2] in "+-" and text[:1] in "+-":
        return math.nan
    if unsigned == "Infinity":
        return -math.inf if text.startswith("-") else math.inf
    mantissa, _, exponent = unsigned.replace("E", "e").partition("e")
    digits = mantissa.replace(".", "", 1)
    if not digits or not (digits.isascii() and digits.isdigit()) or mantissa.count(".") > 1:
        return math.nan
    if "e" in unsigned.replace("E", "e"):
        body = exponent.lstrip("+-") if exponent[:1] in "+-" else exponent
        if not body or not (body.isascii() and body.isdigit()):
            return math.nan
    try:
        return float(decimal.Decimal(text))
    except (decimal.InvalidOperation, OverflowError):  # pragma: no cover - the checks above rule it out
        return math.nan


def _js_compare_model(a: Any, b: Any) -> int | None:
    if isinstance(a, str) and isinstance(b, str):
        a16, b16 = a.encode("utf-16-be", "surrogatepass"), b.encode("utf-16-be", "surrogatepass")
        return (a16 > b16) - (a16 < b16)
    x, y = _js_number_model(a), _js_number_model(b)
    if math.isnan(x) or math.isnan(y):
        return None
    return (x > y) - (x < y)


js_strings = st.one_of(
    numeric_strings,
    any_text,
    st.sampled_from(["0800", "800", "+380441234567", "0x1F", "0o17", "0b101", " 12 ", "Infinity", "1_0", "1e", "."]),
)
js_numbers = st.integers() | big_integers | st.floats(allow_nan=False)


@MANY
@given(a=js_strings | js_numbers, b=js_strings | js_numbers)
def test_comparisons_agree_with_a_model_of_javascript(a: Any, b: Any) -> None:
    """Webitel's `Operations` (webitel/engine-nodejs src/services/hook/hookClass.js) ran JS `==`, `!=`, `<`, …"""
    if b in ("", "null"):
        return  # absent markers
    order = _js_compare_model(a, b)
    expected = {
        "==": order == 0,
        "!=": order != 0,
        "<": order is not None and order < 0,
        ">": order is not None and order > 0,
        "<=": order is not None and order <= 0,
        ">=": order is not None and order >= 0,
    }
    event = {"k": a}
    for operation, result in expected.items():
        assert check(Condition("k", operation, b), event) is result, (operation, a, b)


utf8_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | utf8_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(utf8_text, children, max_size=3),
    max_leaves=10,
)


@FEW
@given(value=utf8_json, text=utf8_text)
def test_json_text_outside_a_string_literal_nests_and_text_inside_stays_text(value: Any, text: str) -> None:
    """Outside string literals rawBody substitutes verbatim, as Webitel's `Message` did (hookClass.js)."""
    rendered = build_request(
        method="POST",
        url="https://example.org/h",
        event_key="E",
        message_id="m",
        event={"payload": json.dumps(value), "text": text},
        auth_values={},
        header_templates={},
        fields=[],
        renames={},
        custom_body=True,
        raw_body='{"obj": ${payload}, "s": "${text}", "same": "${payload}"}',
    )
    assert rendered.body is not None
    assert json.loads(rendered.body) == {"obj": value, "s": text, "same": json.dumps(value)}
