"""Hook filters (SPEC §6): compile a hook's `filter` once, evaluate it per event without surprises."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import regex  # a pure-computation dependency (like stdlib re) that supports match timeouts: ReDoS guard

from switchhook.domain.errors import InvalidHook

logger = logging.getLogger("switchhook.filters")

OPERATIONS = ("==", "!=", "<", ">", "<=", ">=", "reg")
#: Wall-clock cap on one tenant regex match; a timed-out match does not pass.
REGEX_TIMEOUT_S = 0.05
_REGEX_LITERAL = re.compile(r"/(.*)/([gimsy]*)", re.DOTALL)  # fullmatch: "$" would allow a final "\n"
_NUMERIC = re.compile(r"^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*$")
_ABSENT_MARKERS = (None, "null", "")


@dataclass(frozen=True, slots=True)
class Condition:
    """One compiled filter entry: `event[key] <operation> value`."""

    key: str
    operation: str
    value: Any
    pattern: Any = None  # compiled `regex` pattern for `reg`


def compile_filter(spec: Mapping[str, Any]) -> tuple[Condition, ...]:
    """Validate and compile a hook's `filter` object; raises InvalidHook with a message naming the key."""
    conditions = []
    for key, entry in spec.items():
        if not isinstance(entry, Mapping):
            raise InvalidHook(f"Bad request: filter '{key}' must be an object with operation and value.")
        operation = entry.get("operation")
        if operation not in OPERATIONS:
            raise InvalidHook(
                f"Bad request: filter '{key}' has unknown operation {operation!r}; use one of {', '.join(OPERATIONS)}."
            )
        value = entry.get("value")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidHook(f"Bad request: filter '{key}' value must be a string, number or boolean.")
        pattern = None
        if operation == "reg":
            if not isinstance(value, str):
                raise InvalidHook(f"Bad request: filter '{key}' with operation reg needs a string pattern.")
            pattern = compile_pattern(value, key)
        conditions.append(Condition(key, operation, value, pattern))
    return tuple(conditions)


def compile_pattern(text: str, key: str = "") -> Any:
    """`/pattern/flags` (flags i, m, s; g and y accepted and ignored) or a bare pattern."""
    flags = 0
    source = text
    literal = _REGEX_LITERAL.fullmatch(text)
    if literal:
        source, letters = literal.group(1), literal.group(2)
        flags |= regex.IGNORECASE if "i" in letters else 0
        flags |= regex.MULTILINE if "m" in letters else 0
        flags |= regex.DOTALL if "s" in letters else 0
    try:
        return regex.compile(source, flags | regex.VERSION0)
    except (regex.error, ValueError, OverflowError, RecursionError) as exc:
        raise InvalidHook(f"Bad request: filter '{key}' has an invalid regular expression: {exc}.") from None


def passes(conditions: tuple[Condition, ...], event: Mapping[str, Any]) -> bool:
    """True when every condition holds (an empty filter passes)."""
    return all(check(condition, event) for condition in conditions)


def explain(conditions: tuple[Condition, ...], event: Mapping[str, Any]) -> dict[str, bool]:
    """Per-key result, for the dry run."""
    return {condition.key: check(condition, event) for condition in conditions}


def check(condition: Condition, event: Mapping[str, Any]) -> bool:
    """Evaluate one condition against the event's top-level key."""
    op = condition.operation
    present = condition.key in event and event[condition.key] is not None
    actual = event.get(condition.key)
    if op in ("==", "!="):
        if condition.value in _ABSENT_MARKERS:  # Webitel: `== "null"` / `== ""` mean "key absent"
            equal = not present
        else:
            equal = present and _compare(actual, condition.value) == 0
        return equal if op == "==" else not equal
    if op == "reg":
        return _search(condition, "" if not present else _text(actual))
    if not present or condition.value is None:
        return False
    order = _compare(actual, condition.value)
    if order is None:
        return False
    return {"<": order < 0, ">": order > 0, "<=": order <= 0, ">=": order >= 0}[op]


def _search(condition: Condition, text: str) -> bool:
    try:
        return condition.pattern.search(text, timeout=REGEX_TIMEOUT_S) is not None
    except TimeoutError:
        logger.warning("filter regex on key %r timed out after %.0f ms", condition.key, REGEX_TIMEOUT_S * 1000)
        return False


def _compare(a: Any, b: Any) -> int | None:
    """-1/0/1; numeric when both sides are numbers or numeric strings, else string order."""
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return (na > nb) - (na < nb)
    sa, sb = _text(a), _text(b)
    return (sa > sb) - (sa < sb)


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value  # exact: a JSON integer may not fit a float (float() would overflow)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str) and len(value) < 64 and _NUMERIC.match(value):
        try:
            return float(value)
        except ValueError:  # `\s` admits separators such as \x1f that float() refuses
            return None
    return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
