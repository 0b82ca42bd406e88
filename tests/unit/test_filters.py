"""Hook filters (docs/behaviour.md): every operation, JavaScript comparison semantics, absent keys, regexes, guards.

Webitel evaluated filters with JS operators (`Operations` in webitel/engine-nodejs src/services/hook/hookClass.js);
tests/webitel/test_delivery_fidelity.py holds the cited cases, these cover the rest.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from switchhook.core.errors import InvalidHook, ValidationFailed
from switchhook.core.filters import (
    OPERATIONS,
    REGEX_TIMEOUT_S,
    Condition,
    RegexBudget,
    RegexBudgets,
    RegexLimits,
    check,
    compile_filter,
    compile_pattern,
    explain,
    passes,
)
from tests.support.fixtures import load_fixture_event

CHANNEL_CREATE = "amqp-json-CHANNEL_CREATE-kageds-mod_amqp-trace.json"


def cond(operation: str, value: Any, key: str = "k") -> Condition:
    (condition,) = compile_filter({key: {"operation": operation, "value": value}})
    return condition


def holds(operation: str, value: Any, actual: Any = None, *, absent: bool = False) -> bool:
    event: dict[str, Any] = {} if absent else {"k": actual}
    return check(cond(operation, value), event)


# --- compile_filter ------------------------------------------------------------------------------


def test_operations_are_exactly_webitels() -> None:
    assert OPERATIONS == ("==", "!=", "<", ">", "<=", ">=", "reg")


def test_empty_filter_compiles_to_nothing_and_passes_everything() -> None:
    assert compile_filter({}) == ()
    assert passes((), {}) is True
    assert passes((), {"Event-Name": "CHANNEL_CREATE"}) is True
    assert explain((), {"a": "b"}) == {}


def test_compile_keeps_key_operation_and_value_in_order() -> None:
    conditions = compile_filter(
        {
            "Caller-Destination-Number": {"operation": "==", "value": "1001"},
            "Channel-State-Number": {"operation": ">=", "value": 2},
            "Caller-Caller-ID-Name": {"operation": "reg", "value": "/^user_/i"},
        }
    )
    assert [(c.key, c.operation, c.value) for c in conditions] == [
        ("Caller-Destination-Number", "==", "1001"),
        ("Channel-State-Number", ">=", 2),
        ("Caller-Caller-ID-Name", "reg", "/^user_/i"),
    ]
    assert conditions[0].pattern is None
    assert conditions[2].pattern is not None


@pytest.mark.parametrize("operation", ["=", "===", "eq", "like", "REG", "", None, 1, "=="[::-1] + " "])
def test_unknown_operation_is_rejected_naming_the_key(operation: Any) -> None:
    with pytest.raises(InvalidHook) as raised:
        compile_filter({"Answer-State": {"operation": operation, "value": "x"}})
    assert "Answer-State" in raised.value.message
    assert raised.value.message.startswith("Bad request: ")
    assert "operation" in raised.value.message


def test_missing_operation_is_rejected() -> None:
    with pytest.raises(InvalidHook, match="Answer-State"):
        compile_filter({"Answer-State": {"value": "x"}})


@pytest.mark.parametrize("entry", ["==", 1, None, ["==", "x"], True])
def test_entry_that_is_not_an_object_is_rejected_naming_the_key(entry: Any) -> None:
    with pytest.raises(InvalidHook, match="Answer-State"):
        compile_filter({"Answer-State": entry})


@pytest.mark.parametrize("value", [[1, 2], {"a": 1}, object()])
def test_value_of_wrong_type_is_rejected(value: Any) -> None:
    with pytest.raises(InvalidHook, match="Answer-State"):
        compile_filter({"Answer-State": {"operation": "==", "value": value}})


@pytest.mark.parametrize("pattern", ["(", "[a-", "/(/", "/a{2,1}/", "*a", "\\"])
def test_invalid_regex_is_rejected_at_compile_time_naming_the_key(pattern: str) -> None:
    with pytest.raises(InvalidHook) as raised:
        compile_filter({"variable_sip_from_user": {"operation": "reg", "value": pattern}})
    assert "variable_sip_from_user" in raised.value.message
    assert "regular expression" in raised.value.message
    assert isinstance(raised.value, ValidationFailed)


@pytest.mark.parametrize("value", [None, 1, 1.5, True])
def test_reg_needs_a_string_pattern(value: Any) -> None:
    with pytest.raises(InvalidHook, match="Answer-State"):
        compile_filter({"Answer-State": {"operation": "reg", "value": value}})


def test_first_bad_entry_stops_compilation() -> None:
    spec = {
        "good": {"operation": "==", "value": "x"},
        "bad": {"operation": "~", "value": "x"},
    }
    with pytest.raises(InvalidHook, match="'bad'"):
        compile_filter(spec)


# --- == and != -----------------------------------------------------------------------------------


def test_equal_on_strings() -> None:
    assert holds("==", "ringing", "ringing") is True
    assert holds("==", "ringing", "Ringing") is False  # case-sensitive
    assert holds("==", "ringing", "ringing ") is False
    assert holds("!=", "ringing", "ringing") is False
    assert holds("!=", "ringing", "answered") is True


def test_equal_is_numeric_when_one_side_is_a_number() -> None:
    assert holds("==", 2, "2") is True
    assert holds("==", "2", 2) is True
    assert holds("==", 2.0, "2") is True
    assert holds("==", "1e3", 1000) is True
    assert holds("==", 16, "0x10") is True  # JS Number("0x10") is 16
    assert holds("==", 0, "") is True  # JS Number("") is 0
    assert holds("==", 12, " 12\n") is True  # Number() trims white space
    assert holds("!=", 2, "2.0") is False
    assert holds("!=", 2, "3") is True


def test_two_strings_are_equal_only_when_identical() -> None:
    assert holds("==", "2.0", "2") is False
    assert holds("==", "0x10", "16") is False
    assert holds("==", "0800", "800") is False
    assert holds("!=", "0800", "800") is True


@pytest.mark.parametrize("actual", ["abc", "1_000", "inf", "NaN", "١٢", "1e", ".", "0x", "--1", "0x-1"])
def test_a_non_numeric_string_against_a_number_is_nan(actual: str) -> None:
    for value in (0, 1, 1000, 12):
        assert holds("==", value, actual) is False
        assert holds("!=", value, actual) is True
        for operation in ("<", ">", "<=", ">="):
            assert holds(operation, value, actual) is False


def test_equal_on_a_missing_key_is_false_and_not_equal_is_true() -> None:
    assert holds("==", "ringing", absent=True) is False
    assert holds("!=", "ringing", absent=True) is True
    assert holds("==", 0, absent=True) is False


@pytest.mark.parametrize("marker", ["null", "", None])
def test_absent_markers_mean_key_absent(marker: Any) -> None:
    assert holds("==", marker, absent=True) is True
    assert holds("==", marker, "something") is False
    assert holds("!=", marker, absent=True) is False
    assert holds("!=", marker, "something") is True


@pytest.mark.parametrize("marker", ["null", "", None])
def test_a_json_null_value_counts_as_absent(marker: Any) -> None:
    assert check(cond("==", marker), {"k": None}) is True
    assert check(cond("!=", marker), {"k": None}) is False


def test_a_present_key_with_an_empty_value_is_not_absent() -> None:
    # Webitel turned "" / "null" into null, and JS `"" == null` is false.
    assert holds("==", "", "") is False
    assert holds("!=", "", "") is True


def test_literal_string_null_in_the_event_is_present() -> None:
    assert holds("==", "null", "null") is False


def test_booleans_compare_as_true_and_false_text() -> None:
    assert holds("==", True, "true") is True
    assert holds("==", False, "false") is True
    assert holds("==", True, True) is True
    assert holds("==", False, False) is True
    assert holds("==", True, "false") is False
    assert holds("!=", True, "false") is True
    # A boolean is not the number 1 or 0.
    assert holds("==", True, "1") is False
    assert holds("==", False, 0) is False
    assert holds("==", False, "0") is False


def test_zero_is_a_value_not_an_absent_marker() -> None:
    assert holds("==", 0, "0") is True
    assert holds("==", 0, absent=True) is False
    assert holds("!=", 0, absent=True) is True


def test_floats_in_values() -> None:
    assert holds("==", 1.5, "1.5") is True
    assert holds("==", 1.5, "1.50") is True
    assert holds(">", 1.5, "1.6") is True
    assert holds("<", 1.5, "1.49") is True
    assert holds("<=", 0.1, ".1") is True
    assert holds(">=", -2.5, "-2.5") is True


def test_non_finite_floats_do_not_crash() -> None:
    for value in (float("inf"), float("-inf"), float("nan")):
        condition = cond("<", value)
        for actual in ("1", 1, "inf", "abc", None):
            assert check(condition, {"k": actual}) in (True, False)


def test_huge_integers_are_doubles_as_in_javascript() -> None:
    # Python's json module reads integers of any size; JSON.parse made them doubles (Infinity past 1.8e308).
    huge = 10**400
    assert holds(">", 5, huge) is True
    assert holds("<", huge, 5) is True
    assert holds("==", huge, huge) is True
    assert holds("==", huge, huge + 1) is True  # both Infinity
    assert holds(">=", huge, str(huge + 1)) is True  # Number("1000…1") is Infinity too
    assert holds("==", 1, huge) is False
    assert holds("==", 2**53, 2**53 + 1) is True  # doubles: 2^53 + 1 rounds to 2^53


# --- < > <= >= -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "value", "actual", "expected"),
    [
        (">", 10000, "9999", False),  # numeric, not "9999" > "10000" as strings
        ("<", 10000, "9999", True),
        ("<", 9, "10", False),  # "10" < 9 would be true as strings
        (">", 9, "10", True),
        ("<=", 10, "10", True),
        ("<=", 10, "10.0", True),
        (">=", 10, "10", True),
        (">=", 10, "9.99", False),
        ("<", 0, "-1", True),
        ("<", 1e3, " 999 ", True),  # surrounding spaces are tolerated (JS Number())
        (">", 1.5e2, "151", True),
        (">=", 150, "1.5e2", True),  # the string side converts with Number(): exponent form is a number
        ("<", 17, "0x10", True),
    ],
)
def test_ordering_is_numeric_for_numbers(operation: str, value: Any, actual: Any, expected: bool) -> None:
    assert holds(operation, value, actual) is expected


@pytest.mark.parametrize(
    ("operation", "value", "actual", "expected"),
    [
        ("<", "abd", "abc", True),
        (">", "abd", "abc", False),
        ("<", "b", "B", True),  # code unit order
        ("<", "\uff5e", "\U0001f4de", True),  # UTF-16: the emoji's surrogate D83D sorts before FF5E
        (">", "\U0001f4de", "\uff5e", True),
        ("<", "\u00e9", "e", True),
        ("<=", "abc", "abc", True),
        (">=", "abc", "abc", True),
        (">", "10", "9a", True),  # "9a" is not numeric: string comparison, "9a" > "10"
        ("<", "9", "10", True),  # both strings: string order, "10" < "9"
        (">", "9", "10", False),
        ("<", "10000", "9999", False),
        ("<", 5, "abc", False),  # a number makes "abc" NaN: false either way
        (">", 5, "abc", False),
        ("<", "CS_INIT", "CS_EXECUTE", True),
    ],
)
def test_ordering_is_lexicographic_for_other_strings(operation: str, value: Any, actual: Any, expected: bool) -> None:
    assert holds(operation, value, actual) is expected


@pytest.mark.parametrize("operation", ["<", ">", "<=", ">="])
def test_ordering_on_an_absent_key_is_false(operation: str) -> None:
    assert holds(operation, 5, absent=True) is False
    assert holds(operation, "abc", absent=True) is False
    assert check(cond(operation, 5), {"k": None}) is False


@pytest.mark.parametrize("operation", ["<", ">", "<=", ">="])
def test_ordering_against_a_null_value_is_false(operation: str) -> None:
    assert holds(operation, None, "5") is False


def test_ordering_with_numbers_in_the_event() -> None:
    assert holds(">", 2, 3) is True
    assert holds(">", 2, 2.5) is True
    assert holds("<", "2", 1) is True
    assert holds(">=", 0, 0) is True


# --- reg -----------------------------------------------------------------------------------------


def test_reg_with_a_bare_pattern_searches_anywhere() -> None:
    assert holds("reg", "p48", "user_p48egZdPh4") is True
    assert holds("reg", "^p48", "user_p48egZdPh4") is False
    assert holds("reg", "^user_", "user_p48egZdPh4") is True
    assert holds("reg", "^\\d{4}$", "1001") is True
    assert holds("reg", "^\\d{4}$", "10010") is False


def test_reg_with_slashes_and_no_flags() -> None:
    assert holds("reg", "/^user_/", "user_x") is True
    assert holds("reg", "/^USER_/", "user_x") is False


def test_reg_flag_i_ignores_case() -> None:
    assert holds("reg", "/^USER_/i", "user_x") is True


def test_reg_flag_m_makes_anchors_match_lines() -> None:
    text = "first line\nsecond line"
    assert holds("reg", "/^second/", text) is False
    assert holds("reg", "/^second/m", text) is True


def test_reg_flag_s_makes_dot_match_newlines() -> None:
    text = "a\nb"
    assert holds("reg", "/a.b/", text) is False
    assert holds("reg", "/a.b/s", text) is True


@pytest.mark.parametrize("flags", ["g", "y", "gy", "gi", "igm", "msi"])
def test_reg_flags_g_and_y_are_tolerated(flags: str) -> None:
    condition = cond("reg", f"/abc/{flags}")
    assert check(condition, {"k": "xxABCxx" if "i" in flags else "xxabcxx"}) is True


def test_reg_with_an_unknown_flag_is_a_bare_pattern() -> None:
    # "/abc/x" is not a literal with flags (x is not a JS flag): the whole text is the pattern.
    assert holds("reg", "/abc/x", "/abc/x") is True
    assert holds("reg", "/abc/x", "abc") is False


def test_reg_pattern_containing_slashes() -> None:
    assert holds("reg", "/^sofia\\/internal\\//", "sofia/internal/1000@x") is True
    assert holds("reg", "/^sofia/internal//", "sofia/internal/1000@x") is True
    assert holds("reg", "sofia/internal", "sofia/internal/1000@x") is True


def test_reg_on_an_absent_key_searches_the_empty_string() -> None:
    assert holds("reg", "^$", absent=True) is True
    assert holds("reg", ".", absent=True) is False
    assert holds("reg", "x", absent=True) is False


def test_reg_on_non_string_values_reads_their_text() -> None:
    assert holds("reg", "^12$", 12) is True
    assert holds("reg", "^true$", True) is True
    assert holds("reg", "^2$", 2.0) is True


def test_compile_pattern_directly() -> None:
    assert compile_pattern("/a/i").search("A") is not None
    assert compile_pattern("a").search("A") is None
    with pytest.raises(InvalidHook, match="'my-key'"):
        compile_pattern("(", "my-key")


def test_catastrophic_pattern_returns_false_quickly() -> None:
    condition = cond("reg", "(a+)+$")
    started = time.perf_counter()
    assert check(condition, {"k": "a" * 30 + "b"}) is False
    assert time.perf_counter() - started < 1.0


def test_timed_out_match_does_not_pass_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    # The `regex` engine defuses (a+)+$ by itself; (a|aa)+$ still backtracks exponentially.
    condition = cond("reg", "(a|aa)+$", key="Caller-Caller-ID-Name")
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="switchhook.filters"):
        assert check(condition, {"Caller-Caller-ID-Name": "a" * 40 + "!"}) is False
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    assert elapsed >= REGEX_TIMEOUT_S * 0.5
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Caller-Caller-ID-Name" in warnings[0].getMessage()
    assert "timed out" in warnings[0].getMessage()


def test_timed_out_condition_fails_the_whole_filter(caplog: pytest.LogCaptureFixture) -> None:
    conditions = compile_filter(
        {
            "Answer-State": {"operation": "==", "value": "ringing"},
            "name": {"operation": "reg", "value": "(a|aa)+$"},
        }
    )
    event = {"Answer-State": "ringing", "name": "a" * 40 + "!"}
    with caplog.at_level(logging.WARNING, logger="switchhook.filters"):
        assert passes(conditions, event) is False
        assert explain(conditions, event) == {"Answer-State": True, "name": False}


# --- passes / explain on a real event ------------------------------------------------------------


def test_passes_needs_every_condition_on_a_real_event() -> None:
    event = load_fixture_event(CHANNEL_CREATE)
    matching = {
        "Answer-State": {"operation": "==", "value": "ringing"},
        "Caller-Destination-Number": {"operation": ">=", "value": 1000},
        "Channel-State-Number": {"operation": "<", "value": 10},
        "Caller-Caller-ID-Name": {"operation": "reg", "value": "/^USER_/i"},
        "variable_no_such_header": {"operation": "==", "value": "null"},
        "Call-Direction": {"operation": "!=", "value": "outbound"},
    }
    conditions = compile_filter(matching)
    assert passes(conditions, event) is True
    assert explain(conditions, event) == dict.fromkeys(matching, True)

    failing = {**matching, "Call-Direction": {"operation": "==", "value": "outbound"}}
    conditions = compile_filter(failing)
    assert passes(conditions, event) is False
    assert explain(conditions, event) == {**dict.fromkeys(matching, True), "Call-Direction": False}


def test_event_date_timestamp_compares_numerically_against_a_number_only() -> None:
    event = load_fixture_event(CHANNEL_CREATE)
    assert event["Event-Date-Timestamp"] == "1742986241847058"
    assert check(cond(">", 999999999999999, key="Event-Date-Timestamp"), event) is True
    assert check(cond("<", 1742986241847059, key="Event-Date-Timestamp"), event) is True
    assert check(cond(">", "999999999999999", key="Event-Date-Timestamp"), event) is False  # string order


def test_passes_does_not_modify_the_event() -> None:
    event = {"a": "1", "b": "x"}
    conditions = compile_filter({"a": {"operation": "<", "value": 2}, "c": {"operation": "==", "value": ""}})
    assert passes(conditions, event) is True
    assert event == {"a": "1", "b": "x"}


def test_explain_reports_each_key() -> None:
    conditions = compile_filter(
        {
            "a": {"operation": "==", "value": "1"},
            "b": {"operation": ">", "value": 5},
            "c": {"operation": "reg", "value": "x"},
        }
    )
    assert explain(conditions, {"a": "1", "b": "4", "c": "xyz"}) == {"a": True, "b": False, "c": True}


def test_a_trailing_newline_is_part_of_a_bare_pattern() -> None:
    # "/abc/i\n" is not a /pattern/flags literal: the whole text, newline included, is the pattern.
    assert holds("reg", "/abc/i\n", "ABC") is False
    assert holds("reg", "/abc/i\n", "x/abc/i\n") is True


# --- the regex time budget (RegexBudgets): pure, on an injected clock ----------------------------------

MS = 1_000_000  # nanoseconds


class Clock:
    def __init__(self) -> None:
        self.now = 0
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        return self.now


class SlowPattern:
    """A compiled pattern stand-in that takes `cost_ms` of the clock to answer, or times out at its timeout."""

    def __init__(self, clock: Clock, cost_ms: float, found: bool = True) -> None:
        self.clock, self.cost_ns, self.found = clock, int(cost_ms * MS), found
        self.timeouts_ms: list[float] = []

    def search(self, text: str, timeout: float) -> object | None:
        self.timeouts_ms.append(round(timeout * 1000, 6))
        if self.cost_ns > timeout * 1e9:
            self.clock.now += int(timeout * 1e9)
            raise TimeoutError("regex timed out")
        self.clock.now += self.cost_ns
        return object() if self.found else None


def slow(clock: Clock, key: str, cost_ms: float, found: bool = True) -> Condition:
    return Condition(key, "reg", "(a+)+$", SlowPattern(clock, cost_ms, found))


def budgets(clock: Clock, **budget: float) -> tuple[RegexBudgets, list[str]]:
    exhausted: list[str] = []
    return RegexBudgets(RegexBudget(**budget), clock=clock, on_exhausted=exhausted.append), exhausted


def test_each_match_runs_only_as_long_as_the_event_has_left_and_the_rest_are_not_tried() -> None:
    clock = Clock()
    regex_budgets, exhausted = budgets(clock, per_event_ms=20)
    a, b, c = slow(clock, "a", 15), slow(clock, "b", 40), slow(clock, "c", 1)
    allowance = regex_budgets.allowance("hostile.example", notes=True)
    assert explain((a, b, c), {}, allowance) == {"a": True, "b": False, "c": False}
    assert a.pattern.timeouts_ms == [20]  # min(the 50 ms per match, the event's 20 ms)
    assert b.pattern.timeouts_ms == [5]  # what the event had left
    assert c.pattern.timeouts_ms == []  # nothing left: not tried at all
    assert allowance.spent_ns == 20 * MS
    assert exhausted == ["event"]  # once per event, whatever the conditions cut
    assert allowance.notes is not None
    assert set(allowance.notes) == {"b", "c"}
    assert allowance.notes["b"].startswith("stopped after 5 ms: the event's regex matching time was used up")
    assert allowance.notes["c"].startswith("not evaluated: the event's regex matching time was used up")


def test_without_an_allowance_a_match_has_its_own_timeout_only() -> None:
    clock = Clock()
    condition = slow(clock, "a", 1)
    assert check(condition, {}) is True
    assert condition.pattern.timeouts_ms == [REGEX_TIMEOUT_S * 1000]


def test_a_domain_spends_its_burst_then_earns_its_rate_and_other_domains_keep_theirs() -> None:
    clock = Clock()
    regex_budgets, exhausted = budgets(clock, ms_per_s=50, burst_ms=200, per_event_ms=20)
    condition = slow(clock, "k", 1000)  # every match would run to its timeout
    for _ in range(10):  # 10 events x 20 ms: the burst
        assert passes((condition,), {}, regex_budgets.allowance("hostile.example")) is False
    assert exhausted == ["event"] * 10
    assert regex_budgets.left_ms("hostile.example") == pytest.approx(10)  # earned while those 200 ms ran
    assert passes((condition,), {}, regex_budgets.allowance("hostile.example")) is False
    assert condition.pattern.timeouts_ms == [20] * 10 + [10]
    assert exhausted[-1] == "domain"
    tried = len(condition.pattern.timeouts_ms)
    # Another domain has its own bucket, full.
    assert regex_budgets.left_ms("other.example") == 200
    other = slow(clock, "k", 2)
    assert passes((other,), {}, regex_budgets.allowance("other.example")) is True
    # A second later the hostile domain has earned 50 ms: two and a half events' worth, cut at the event's 20.
    clock.now += 1000 * MS
    # (plus 0.5 ms earned during its 10 ms event and 0.1 during the other domain's 2 ms)
    assert regex_budgets.left_ms("hostile.example") == pytest.approx(50.6)
    for _ in range(3):
        passes((condition,), {}, regex_budgets.allowance("hostile.example"))
    assert condition.pattern.timeouts_ms[tried:] == pytest.approx([20, 20, 12.6])  # 10.6 + 5% of the 40 ms


def test_an_overrun_is_a_debt_the_next_events_repay() -> None:
    clock = Clock()
    regex_budgets, _ = budgets(clock, ms_per_s=100, burst_ms=20, per_event_ms=20)

    class Overrunning(SlowPattern):
        def search(self, text: str, timeout: float) -> object | None:
            self.clock.now += int(timeout * 1e9) + 80 * MS  # the engine checks its timeout now and then
            raise TimeoutError("regex timed out")

    condition = Condition("k", "reg", "x", Overrunning(clock, 0))
    passes((condition,), {}, regex_budgets.allowance("d"))
    assert regex_budgets.left_ms("d") == pytest.approx(-70)  # charged 100 ms, earned 10 meanwhile
    later = slow(clock, "k", 1)
    assert passes((later,), {}, regex_budgets.allowance("d")) is False
    assert later.pattern.timeouts_ms == []  # in debt: not tried
    clock.now += 800 * MS  # 80 ms earned: 10 left
    assert regex_budgets.left_ms("d") == pytest.approx(10)
    assert passes((later,), {}, regex_budgets.allowance("d")) is True


def test_conditions_without_reg_never_read_the_clock() -> None:
    clock = Clock()
    regex_budgets, _ = budgets(clock)
    conditions = compile_filter({"a": {"operation": "==", "value": "1"}, "b": {"operation": "<", "value": 5}})
    allowance = regex_budgets.allowance("d")
    reads = clock.reads
    assert passes(conditions, {"a": "1", "b": "4"}, allowance) is True
    assert clock.reads == reads
    assert allowance.spent_ns == 0


def test_running_out_is_logged_once_per_interval_per_domain_with_the_counts(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    regex_budgets = RegexBudgets(RegexBudget(ms_per_s=1, burst_ms=10, per_event_ms=10), clock=clock)
    condition = slow(clock, "k", 1000)
    with caplog.at_level(logging.WARNING, logger="switchhook.filters"):
        for _ in range(100):
            passes((condition,), {}, regex_budgets.allowance("hostile.example"))
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1
        assert "'hostile.example'" in lines[0] and "1 reg conditions were not evaluated" in lines[0]
        clock.now += 60_000 * MS
        passes((condition,), {}, regex_budgets.allowance("hostile.example"))
        passes((slow(clock, "k", 1000),), {}, regex_budgets.allowance("other.example"))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert "100 reg conditions were not evaluated" in lines[1]  # the 99 since the first line, and this one
    assert "'other.example'" in lines[2]


def test_a_real_catastrophic_pattern_takes_the_events_budget_not_its_timeout() -> None:
    regex_budgets = RegexBudgets(RegexBudget(per_event_ms=5))
    conditions = compile_filter({f"k{n}": {"operation": "reg", "value": "(a|aa)+$"} for n in range(10)})
    event = {f"k{n}": "a" * 40 + "!" for n in range(10)}
    started = time.perf_counter()
    allowance = regex_budgets.allowance("d", notes=True)
    assert explain(conditions, event, allowance) == {f"k{n}": False for n in range(10)}
    assert time.perf_counter() - started < REGEX_TIMEOUT_S  # 10 x 50 ms without the budget
    assert allowance.notes is not None and len(allowance.notes) == 10


def test_unknown_operations_cost_no_budget() -> None:
    clock = Clock()
    regex_budgets, exhausted = budgets(clock, per_event_ms=1)
    never = Condition("k", "reg", None, compile_pattern("(?!)"))
    allowance = regex_budgets.allowance("d")
    assert check(slow(clock, "a", 5), {}, allowance) is False
    assert check(never, {}, allowance) is False
    assert exhausted == ["event"]


def test_a_hook_may_have_at_most_max_per_hook_reg_conditions() -> None:
    spec = {f"k{n}": {"operation": "reg", "value": "^x"} for n in range(11)}
    with pytest.raises(InvalidHook, match="11 conditions with operation reg, more than the 10"):
        compile_filter(spec)
    assert len(compile_filter(spec, RegexLimits(max_per_hook=11))) == 11
    assert len(compile_filter({**spec, "k10": {"operation": "==", "value": "x"}})) == 11
