"""Property tests of templating and filters: valid JSON bodies, no exceptions, numbers compare as numbers."""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import parse_qsl

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchhook.domain.errors import InvalidHook
from switchhook.domain.filters import OPERATIONS, Condition, check, compile_filter, explain, passes
from switchhook.domain.render import (
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


@MANY
@given(a=numeric_strings, b=numeric_strings | st.integers() | st.floats(allow_nan=False))
def test_numeric_comparison_agrees_with_float_comparison(a: str, b: Any) -> None:
    x = float(a)
    y = b if not isinstance(b, str) else float(b)
    if isinstance(y, float) and not math.isfinite(y):
        return
    expected = {"==": x == y, "!=": x != y, "<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}
    event = {"k": a}
    for operation, result in expected.items():
        condition = Condition("k", operation, b)
        assert check(condition, event) is result, (operation, a, b)


@FEW
@given(a=utf8_text.filter(lambda s: not _is_number(s)), b=utf8_text.filter(lambda s: not _is_number(s)))
def test_string_comparison_is_lexicographic(a: str, b: str) -> None:
    if b in ("", "null"):
        return  # absent markers
    event = {"k": a}
    assert check(Condition("k", "<", b), event) is (a < b)
    assert check(Condition("k", ">=", b), event) is (a >= b)
    assert check(Condition("k", "==", b), event) is (a == b)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
