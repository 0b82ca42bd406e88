"""Hook filters (docs/behaviour.md): compile a hook's `filter` once, evaluate it per event without surprises."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import regex  # a pure-computation dependency (like stdlib re) that supports match timeouts: ReDoS guard

from switchhook.core.errors import InvalidHook

logger = logging.getLogger("switchhook.filters")

OPERATIONS = ("==", "!=", "<", ">", "<=", ">=", "reg")
#: Wall-clock cap on one tenant regex match; a timed-out match does not pass.
REGEX_TIMEOUT_S = 0.05
_REGEX_TIMEOUT_NS = int(REGEX_TIMEOUT_S * 1e9)
_REGEX_LITERAL = re.compile(r"/(.*)/([gimsy]*)", re.DOTALL)  # fullmatch: "$" would allow a final "\n"
#: What JS `Number()` trims: WhiteSpace and LineTerminator code points (ECMAScript StringToNumber).
_JS_SPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
#: StrNumericLiteral: a signed decimal or Infinity, or an unsigned 0x/0o/0b integer ([0-9], never Unicode digits).
_JS_NUMBER = re.compile(
    r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)|0(?P<radix>[xXoObB])(?P<digits>[0-9a-fA-F]+)"
)
_RADIX = {"x": 16, "o": 8, "b": 2}
_ABSENT_MARKERS = (None, "null", "")


@dataclass(frozen=True, slots=True)
class RegexLimits:
    """What a hook's `reg` filters may cost, checked before anything is compiled (RELIABILITY.md, hostile tenants).

    The `regex` package unrolls fixed repetitions: `(?:a{1500}){1500}` (19 characters) compiles to a 2.25 M
    character program, ~550 MB and ~20 s of one core, again at every start. So a pattern is refused before
    compiling when it is longer than `max_length` characters, holds a repetition count above `max_repeat`, or
    when the hook's patterns together expand to more than `max_size` units (`expanded_size`: one unit per
    character, class or escape, repetitions multiplied out; ~250 bytes of compiled program each, measured).
    A hook holds at most `max_per_hook` `reg` conditions: what its dry run may try at once.
    """

    max_length: int = 1000
    max_repeat: int = 1000
    max_size: int = 5000
    max_per_hook: int = 10


DEFAULT_REGEX_LIMITS = RegexLimits()


@dataclass(frozen=True, slots=True)
class Condition:
    """One compiled filter entry: `event[key] <operation> value`."""

    key: str
    operation: str
    value: Any
    pattern: Any = None  # compiled `regex` pattern for `reg`


def compile_filter(spec: Mapping[str, Any], limits: RegexLimits = DEFAULT_REGEX_LIMITS) -> tuple[Condition, ...]:
    """Validate and compile a hook's `filter` object; raises InvalidHook with a message naming the key.

    Every `reg` pattern is checked against `limits` before any is compiled (see RegexLimits).
    """
    check_filter_patterns(spec, limits)
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


def check_filter_patterns(spec: Mapping[str, Any], limits: RegexLimits = DEFAULT_REGEX_LIMITS) -> int:
    """The expanded size of the `reg` patterns of a filter, or InvalidHook saying which bound one is over."""
    count = sum(1 for entry in spec.values() if isinstance(entry, Mapping) and entry.get("operation") == "reg")
    if count > limits.max_per_hook:
        raise InvalidHook(
            f"Bad request: filter has {count} conditions with operation reg, more than the {limits.max_per_hook}"
            " one hook may have."
        )
    total = 0
    for key, entry in spec.items():
        if isinstance(entry, Mapping) and entry.get("operation") == "reg" and isinstance(entry.get("value"), str):
            total += check_pattern(entry["value"], key, limits)
            if total > limits.max_size:
                raise InvalidHook(
                    f"Bad request: filter '{key}': the hook's regular expressions expand to more than "
                    f"{limits.max_size} units together (repetitions multiplied out); the limit keeps a "
                    "hook's compiled patterns small."
                )
    return total


def check_pattern(text: str, key: str = "", limits: RegexLimits = DEFAULT_REGEX_LIMITS) -> int:
    """The expanded size of one `reg` value (see `expanded_size`), or InvalidHook naming the bound it is over."""
    source = _split_literal(text)[0]
    if len(source) > limits.max_length:
        raise InvalidHook(
            f"Bad request: filter '{key}' regular expression is {len(source)} characters long, "
            f"more than the {limits.max_length} allowed."
        )
    try:
        size = expanded_size(source, limits.max_repeat)
    except _RepeatTooLarge as exc:
        raise InvalidHook(
            f"Bad request: filter '{key}' regular expression repeats {exc.count} times, more than the "
            f"{limits.max_repeat} allowed in one repetition."
        ) from None
    if size > limits.max_size:
        raise InvalidHook(
            f"Bad request: filter '{key}' regular expression expands to {size} units (repetitions multiplied "
            f"out), more than the {limits.max_size} allowed: it would compile to a program that large."
        )
    return size


class _RepeatTooLarge(Exception):
    def __init__(self, count: int) -> None:
        self.count = count


#: What opens a group, so `(?:`, `(?P<name>`, `(?<=`, `(?i)` are not read as atoms.
_GROUP_OPENING = re.compile(r"\((?:\?(?:P?<[^>=!]*>|P=|<?[=!]|[:>|]|[A-Za-z^-]+:?)?)?")
_COUNTED = re.compile(r"\{(\d*)(,(\d*))?\}")


def expanded_size(source: str, max_repeat: int) -> int:
    """An upper bound of the program `regex` compiles `source` to, in units, without compiling it.

    One unit per literal character, escape, character class or `.`; a group is its content, an alternation
    its branches plus one each; `{n}` multiplies by n (the engine unrolls it), any other repetition by
    min + 1. Conservative: a `{` that is not a count reads as a literal, an escape's tail as literals.
    Raises _RepeatTooLarge for a count above `max_repeat` (read as an integer, however many digits).
    """
    # Per open group: [size of the closed branches (plus one per branch), size of the current branch, last atom].
    stack: list[list[int]] = [[0, 0, 0]]
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        frame = stack[-1]
        if char == "\\":
            i += 2
            frame[1] += 1
            frame[2] = 1
            continue
        if char == "[":
            i = _class_end(source, i)
            frame[1] += 1
            frame[2] = 1
            continue
        if char == "(":
            if source.startswith("(?#", i):
                close = source.find(")", i)
                i = n if close < 0 else close + 1
                continue
            stack.append([0, 0, 0])
            opening = _GROUP_OPENING.match(source, i)
            i = opening.end() if opening else i + 1
            continue
        if char == ")" and len(stack) > 1:
            closed, current, _ = stack.pop()
            size = closed + current + (1 if closed else 0)
            stack[-1][1] += size
            stack[-1][2] = size
            i += 1
            continue
        if char == "|":
            frame[0] += frame[1] + 1
            frame[1] = frame[2] = 0
            i += 1
            continue
        multiplier = None
        if char in "*?":
            multiplier, i = 1, i + 1
        elif char == "+":
            multiplier, i = 2, i + 1
        elif char == "{" and (counted := _COUNTED.match(source, i)) is not None:
            low = int(counted.group(1) or 0)
            high = low if counted.group(2) is None else (int(counted.group(3)) if counted.group(3) else None)
            for count in (low, high):
                if count is not None and count > max_repeat:
                    raise _RepeatTooLarge(count)
            multiplier = low if high == low else low + 1
            i = counted.end()
        if multiplier is not None:
            if i < n and source[i] in "?+":  # lazy or possessive: the same program
                i += 1
            frame[1] += frame[2] * (multiplier - 1)
            frame[2] *= multiplier
            continue
        frame[1] += 1
        frame[2] = 1
        i += 1
    while len(stack) > 1:  # unbalanced: the compiler will say so; count what is there
        closed, current, _ = stack.pop()
        stack[-1][1] += closed + current
    return stack[0][0] + stack[0][1] + (1 if stack[0][0] else 0)


def _class_end(source: str, start: int) -> int:
    """The index after the `]` closing the class opened at `start` (a leading `]` or `^]` is a member)."""
    i = start + 1
    if i < len(source) and source[i] == "^":
        i += 1
    if i < len(source) and source[i] == "]":
        i += 1
    while i < len(source):
        if source[i] == "\\":
            i += 2
            continue
        if source.startswith("[:", i):  # a POSIX class such as [:alpha:]
            close = source.find(":]", i + 2)
            if close >= 0:
                i = close + 2
                continue
        if source[i] == "]":
            return i + 1
        i += 1
    return len(source)


def _split_literal(text: str) -> tuple[str, int]:
    """(source, flags) of `/pattern/flags` (flags i, m, s; g and y accepted and ignored) or a bare pattern."""
    literal = _REGEX_LITERAL.fullmatch(text)
    if not literal:
        return text, 0
    source, letters = literal.group(1), literal.group(2)
    flags = regex.IGNORECASE if "i" in letters else 0
    flags |= regex.MULTILINE if "m" in letters else 0
    flags |= regex.DOTALL if "s" in letters else 0
    return source, flags


def compile_pattern(text: str, key: str = "") -> Any:
    """`/pattern/flags` (flags i, m, s; g and y accepted and ignored) or a bare pattern.

    Callers check the pattern against RegexLimits first (compile_filter does). Not kept in the `regex`
    package's own cache: it would keep 500 patterns of deleted hooks alive.
    """
    source, flags = _split_literal(text)
    try:
        return regex.compile(source, flags | regex.VERSION0, cache_pattern=False)
    except (regex.error, ValueError, OverflowError, RecursionError) as exc:
        raise InvalidHook(f"Bad request: filter '{key}' has an invalid regular expression: {exc}.") from None


def passes(conditions: tuple[Condition, ...], event: Mapping[str, Any], allowance: Allowance | None = None) -> bool:
    """True when every condition holds (an empty filter passes). `reg` conditions take their time from
    `allowance` when given (see RegexBudgets); without one each match has only its own timeout."""
    return all(check(condition, event, allowance) for condition in conditions)


def explain(
    conditions: tuple[Condition, ...], event: Mapping[str, Any], allowance: Allowance | None = None
) -> dict[str, bool]:
    """Per-key result, for the dry run."""
    return {condition.key: check(condition, event, allowance) for condition in conditions}


def check(condition: Condition, event: Mapping[str, Any], allowance: Allowance | None = None) -> bool:
    """Evaluate one condition against the event's top-level key, as Webitel's `Operations` did in JavaScript."""
    op = condition.operation
    actual = event.get(condition.key)  # a JSON null is an absent key
    if op in ("==", "!=") and condition.value in _ABSENT_MARKERS:  # Webitel: `== "null"` / `== ""` mean absent
        return (actual is None) is (op == "==")
    if op == "reg":
        text = "" if actual is None else js_text(actual)
        if allowance is None or condition.value is None:  # no budget, or an unknown operation's (?!): instant
            return _search(condition, text)
        return allowance.search(condition, text)
    if actual is None:  # JS: undefined == x is false, undefined < x is false (NaN)
        return op == "!="
    if condition.value is None:  # only an ordering gets here with a null value: never passes
        return False
    order = _compare(actual, condition.value)
    if order is None:  # NaN: every comparison is false but !=
        return op == "!="
    if op == "==":
        return order == 0
    if op == "!=":
        return order != 0
    return {"<": order < 0, ">": order > 0, "<=": order <= 0, ">=": order >= 0}[op]


def _search(condition: Condition, text: str) -> bool:
    try:
        return condition.pattern.search(text, timeout=REGEX_TIMEOUT_S) is not None
    except TimeoutError:
        logger.warning("filter regex on key %r timed out after %.0f ms", condition.key, REGEX_TIMEOUT_S * 1000)
        return False


# --- the time regexes may take ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegexBudget:
    """How much time `reg` matching may take, per domain (RELIABILITY.md, hostile tenants; docs/behaviour.md).

    Matching runs on the event loop every tenant shares: 200 hooks whose `(a+)+$` each ran to its 50 ms timeout
    held it 10 s per event. So each domain has a bucket of matching time, `ms_per_s` milliseconds per second
    up to `burst_ms`, and one event may use at most `per_event_ms` of it; each match is charged what it took
    and may run only as long as is left. A condition reached with nothing left is not tried: it does not hold.
    Legitimate patterns take a fraction of a microsecond on a header (0.2 us measured for `/^user_/i`): 50 ms
    per second is some 250,000 such matches per second per domain, 10 ms some 50,000 per event. The burst is
    what one domain can hold the loop for at once (another domain's p99 grew with it: ~40-95 ms at 200 ms,
    ~20-45 ms at 50 ms, on a loaded 2-core machine).
    """

    ms_per_s: float = 50.0
    burst_ms: float = 50.0
    per_event_ms: float = 10.0


#: What the metric and the log call each budget: the event's share, or the domain's bucket.
EVENT, DOMAIN = "event", "domain"
_TIMEOUT = "timeout"
_CUT_BY = {EVENT: "the event's time was used up", DOMAIN: "the domain's time was used up", _TIMEOUT: "a timeout"}


@dataclass(slots=True)
class _Bucket:
    tokens_ns: float
    refilled_ns: int
    logged_ns: int | None = None  # when the last warning went out
    not_evaluated: int = 0  # conditions cut since then
    timed_out: int = 0  # matches stopped by their own timeout since then


class RegexBudgets:
    """One bucket of matching time per domain that has `reg` filters; `allowance` opens one event's account.

    Pure state with an injected clock (nanoseconds, monotonic). What ran out is reported through
    `on_exhausted(EVENT | DOMAIN)` once per event (a metric) and logged at most once per `log_interval_s` per
    domain with the counts since the last line (one attacking domain wrote 701 warnings in 15 s).
    """

    def __init__(
        self,
        budget: RegexBudget = RegexBudget(),
        *,
        clock: Callable[[], int] = time.perf_counter_ns,
        on_exhausted: Callable[[str], None] | None = None,
        log_interval_s: float = 60.0,
    ) -> None:
        self.budget = budget
        self.clock = clock
        self._rate_per_ns = budget.ms_per_s / 1000.0  # ns of matching earned per ns of time
        self._burst_ns = budget.burst_ms * 1e6
        self._per_event_ns = budget.per_event_ms * 1e6
        self._on_exhausted = on_exhausted
        self._log_interval_ns = int(log_interval_s * 1e9)
        self._buckets: dict[str, _Bucket] = {}

    def allowance(self, domain: str, *, notes: bool = False) -> Allowance:
        """One event's account against `domain`'s bucket (refilled for the time since the last one). `notes`:
        keep, per condition cut short, why (the dry run shows them)."""
        now = self.clock()
        bucket = self._buckets.get(domain)
        if bucket is None:
            bucket = self._buckets[domain] = _Bucket(self._burst_ns, now)
        else:
            bucket.tokens_ns = min(self._burst_ns, bucket.tokens_ns + (now - bucket.refilled_ns) * self._rate_per_ns)
            bucket.refilled_ns = now
        return Allowance(self, domain, bucket, self._per_event_ns, {} if notes else None)

    def left_ms(self, domain: str) -> float:
        """What `domain` may spend now, milliseconds (its bucket, refilled to now)."""
        bucket = self._buckets.get(domain)
        if bucket is None:
            return self.budget.burst_ms
        refilled = bucket.tokens_ns + (self.clock() - bucket.refilled_ns) * self._rate_per_ns
        return min(self._burst_ns, refilled) / 1e6

    def forget(self, domain: str) -> None:
        """The domain is gone: drop its bucket."""
        self._buckets.pop(domain, None)

    def _exhausted(self, kind: str) -> None:
        if self._on_exhausted is not None:
            self._on_exhausted(kind)

    def _report(self, domain: str, bucket: _Bucket, kind: str) -> None:
        """Log what was cut since the last line, unless a line went out less than an interval ago."""
        now = self.clock()
        if bucket.logged_ns is not None and now - bucket.logged_ns < self._log_interval_ns:
            return
        logger.warning(
            "domain %r: regex filters cut short (%s); since the last report %d reg conditions were not evaluated"
            " and %d matches timed out, none of them holding (matching time: %g ms per event, %g ms per second"
            " per domain, %g ms burst; docs/behaviour.md, Regex filters)",
            domain,
            _CUT_BY[kind],
            bucket.not_evaluated,
            bucket.timed_out,
            self.budget.per_event_ms,
            self.budget.ms_per_s,
            self.budget.burst_ms,
        )
        bucket.logged_ns, bucket.not_evaluated, bucket.timed_out = now, 0, 0


class Allowance:
    """One event's matching time for one domain: the lesser of what the event and the domain have left."""

    __slots__ = ("_bucket", "_budgets", "_event_left_ns", "cut", "domain", "notes", "spent_ns")

    def __init__(
        self, budgets: RegexBudgets, domain: str, bucket: _Bucket, per_event_ns: float, notes: dict[str, str] | None
    ) -> None:
        self._budgets = budgets
        self._bucket = bucket
        self._event_left_ns = per_event_ns
        self.domain = domain
        self.spent_ns = 0  # measured time of this event's matches
        self.cut: str | None = None  # EVENT or DOMAIN once a condition was cut short
        self.notes = notes  # key -> why it was not (fully) evaluated, when asked for

    @property
    def exhausted(self) -> bool:
        return self._event_left_ns <= 0 or self._bucket.tokens_ns <= 0

    def search(self, condition: Condition, text: str) -> bool:
        """`condition`'s pattern found in `text` within what is left; a match not tried or stopped is False."""
        event_left, domain_left = self._event_left_ns, self._bucket.tokens_ns
        left = min(event_left, domain_left)
        if left <= 0:
            self._cut(condition, EVENT if event_left <= domain_left else DOMAIN, None)
            return False
        timeout_ns = min(_REGEX_TIMEOUT_NS, left)
        clock = self._budgets.clock
        start = clock()
        try:
            found = condition.pattern.search(text, timeout=timeout_ns / 1e9) is not None
        except TimeoutError:
            found = None
        elapsed = clock() - start
        self.spent_ns += elapsed
        self._event_left_ns -= elapsed
        self._bucket.tokens_ns -= elapsed  # measured, so an overshoot is a debt the next events repay
        if found is not None:
            return found
        if timeout_ns < _REGEX_TIMEOUT_NS:  # stopped by the budget, not by its own timeout
            self._cut(condition, EVENT if event_left <= domain_left else DOMAIN, elapsed)
        else:
            self._bucket.timed_out += 1
            if self.notes is not None:
                self.notes[condition.key] = f"timed out after {elapsed / 1e6:.0f} ms: does not hold"
            self._budgets._report(self.domain, self._bucket, _TIMEOUT)
        return False

    def _cut(self, condition: Condition, kind: str, elapsed_ns: int | None) -> None:
        if self.cut is None:
            self.cut = kind
            self._budgets._exhausted(kind)
        self._bucket.not_evaluated += 1
        if self.notes is not None:
            ran = "not evaluated" if elapsed_ns is None else f"stopped after {elapsed_ns / 1e6:.0f} ms"
            self.notes[condition.key] = (
                f"{ran}: the {'event' if kind == EVENT else 'domain'}'s regex matching time was used up"
                " (docs/behaviour.md, Regex filters): does not hold"
            )
        self._budgets._report(self.domain, self._bucket, kind)


def _compare(a: Any, b: Any) -> int | None:
    """-1/0/1 as JavaScript's `==` and `<` decide them, None when a side is NaN.

    Two strings compare exactly, in UTF-16 code unit order (phone numbers are strings: "0800" is not "800");
    when either side is a number, the other converts with JS `Number()` (a non-numeric string is NaN).
    Booleans compare as their text "true"/"false" (a deliberate difference: JS would turn true into 1).
    """
    if type(a) is str and type(b) is str:  # the hot path: FreeSWITCH headers against a string value
        if a == b:
            return 0
        if a.isascii() and b.isascii():
            return -1 if a < b else 1
        return _utf16_order(a, b)
    if isinstance(a, bool) or isinstance(b, bool):
        return _utf16_order(js_text(a), js_text(b))
    if isinstance(a, int | float) or isinstance(b, int | float):
        x, y = js_number(a), js_number(b)
        if math.isnan(x) or math.isnan(y):
            return None
        return (x > y) - (x < y)
    return _utf16_order(js_text(a), js_text(b))


def _utf16_order(a: str, b: str) -> int:
    """JS string order compares UTF-16 code units: U+FF5E sorts after U+1F4DE, unlike code point order."""
    if a == b:
        return 0
    if not (a.isascii() and b.isascii()):
        a16, b16 = a.encode("utf-16-be", "surrogatepass"), b.encode("utf-16-be", "surrogatepass")
        return -1 if a16 < b16 else 1
    return -1 if a < b else 1


def js_number(value: Any) -> float:
    """JavaScript `Number(value)` for JSON values: doubles (huge integers become Infinity), NaN when not numeric."""
    if isinstance(value, str):
        return _string_to_number(value)
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:  # JSON.parse reads such a literal as +/-Infinity
            return math.inf if value > 0 else -math.inf
    if isinstance(value, float):
        return value
    if value is None:
        return 0.0
    return _string_to_number(js_text(value))  # arrays and objects: ToPrimitive, then ToNumber


def _string_to_number(text: str) -> float:
    """ECMAScript StringToNumber: trimmed, "" is 0, decimal/Infinity/0x/0o/0b literals, anything else NaN."""
    if text.isascii() and text.isdigit():  # the usual header: plain ASCII digits
        return float(text)
    text = text.strip(_JS_SPACE)
    if not text:
        return 0.0
    match = _JS_NUMBER.fullmatch(text)
    if match is None:
        return math.nan
    if match.group("radix") is None:
        return float(text)  # correctly rounded, as JS; "1e400" is inf, "Infinity" is inf
    digits, base = match.group("digits"), _RADIX[match.group("radix").lower()]
    try:
        return float(int(digits, base))
    except OverflowError:
        return math.inf


def js_text(value: Any) -> str:
    """JavaScript `String(value)` for JSON values (arrays joined with commas, objects "[object Object]")."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number_text(js_number(value))
    if value is None:
        return "null"
    if isinstance(value, list):
        return ",".join("" if item is None else js_text(item) for item in value)
    return "[object Object]"


def _number_text(number: float) -> str:
    """ECMAScript Number::toString: shortest round-trip digits, exponent form below 1e-6 and from 1e21."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    mantissa, _, exponent = repr(abs(number)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    all_digits = whole + fraction
    digits = all_digits.lstrip("0")
    point = (
        len(whole) - (len(all_digits) - len(digits)) + (int(exponent) if exponent else 0)
    )  # value = 0.digits e point
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= point <= 21:
        text = digits + "0" * (point - k)
    elif 0 < point <= 21:
        text = digits[:point] + "." + digits[point:]
    elif -6 < point <= 0:
        text = "0." + "0" * -point + digits
    else:
        power = point - 1
        text = digits[0] + ("." + digits[1:] if k > 1 else "") + ("e+" if power >= 0 else "e-") + str(abs(power))
    return sign + text
