"""Owns FreeSWITCH event decoding (ESL framing, plain/json/xml bodies, decoded dumps) and event key/domain."""

from __future__ import annotations

import codecs
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote

from switchhook.core.errors import InvalidEvent

Event = dict[str, Any]
"""Header name -> value. Values are str, except that decoded-dump JSON values may be dict/list."""

DEFAULT_DOMAIN_HEADERS: tuple[str, ...] = (
    "variable_domain_name",
    "variable_w_domain",
    "Channel-Presence-ID",
    "variable_presence_id",
    "variable_dialed_domain",
    "Event-Domain",
)
# Their value is `user@domain`: the domain is the part after the first '@' (no '@': all of it, as Webitel).
PRESENCE_HEADERS: frozenset[str] = frozenset({"Channel-Presence-ID", "variable_presence_id"})

MAX_FRAME_HEADER_BYTES: Final = 64 * 1024
#: Nesting a JSON event may have (its own object is level 1). FreeSWITCH events are flat; storing an event
#: re-encodes it, and the encoder stops near 255 levels, which a client used to hear as "not valid Unicode".
MAX_JSON_DEPTH: Final = 128
MAX_FRAME_BODY_BYTES: Final = 16 * 1024 * 1024

# Where a plain body's headers start: the first line holding ": " (or ending in ":"), so that a preamble
# such as `RECV EVENT` or a leading blank line does not end the header block early.
_FIRST_HEADER_LINE: Final = re.compile(rb"^[^\n]*?(?:: |:\r?$)", re.MULTILINE)
_BLANK_LINE: Final = re.compile(rb"\n\r?\n")
_LEADING_NEWLINES: Final = re.compile(rb"[\r\n]*")
# Decoded dumps: anything else on a line is the continuation of the previous value (SDP, JSON).
_DUMP_HEADER_LINE: Final = re.compile(r"([A-Za-z0-9_:.-]+?):(?: (.*))?")


def _invalid_json_message(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        if "depth" in exc.msg or "recursion" in exc.msg.lower():  # orjson: "depth limit exceeded"
            return _TOO_DEEP
        return f"event is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    return "event is not valid JSON: the bytes are not UTF-8, UTF-16 or UTF-32 text"


def _type_name(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _check_event_name(event: Event) -> Event:
    """The text formats' rule: a body that yields no Event-Name is not an event."""
    name = event.get("Event-Name")
    if name is None or name == "":
        raise InvalidEvent("event has no Event-Name")
    if not isinstance(name, str):
        raise InvalidEvent(f"event Event-Name must be a string, got {_type_name(name)}")
    return event


def _load_json(data: bytes | str, loads: Callable[[bytes | str], Any] | None = None) -> Any:
    try:
        return (loads or json.loads)(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise InvalidEvent(_invalid_json_message(exc)) from None
    except RecursionError:
        raise InvalidEvent(_TOO_DEEP) from None


_TOO_DEEP = f"event is not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels"  # the parser gave up deeper


def _check_depth(data: bytes | str, events: Sequence[Any]) -> None:
    """Refuse an event nested deeper than MAX_JSON_DEPTH; counting brackets first keeps flat events cheap."""
    brackets = data.count(b"{") + data.count(b"[") if isinstance(data, bytes) else data.count("{") + data.count("[")
    if brackets <= MAX_JSON_DEPTH:
        return
    for index, event in enumerate(events):
        stack: list[tuple[Any, int]] = [(event, 1)]
        while stack:
            value, depth = stack.pop()
            for child in value.values() if isinstance(value, dict) else value:
                if isinstance(child, dict | list):
                    if depth == MAX_JSON_DEPTH:
                        where = "event" if len(events) == 1 else f"event {index}"
                        raise InvalidEvent(f"{where} is nested deeper than {MAX_JSON_DEPTH} levels")
                    stack.append((child, depth + 1))


def decode_json_event(data: bytes | str, loads: Callable[[bytes | str], Any] | None = None) -> Event:
    """Decode one `text/event-json` / mod_amqp body (one JSON object, possibly pretty-printed).

    Values are kept as given; a duplicate key keeps its last value (JSON.parse, as Webitel saw it).
    Only the shape is checked: whether there is an Event-Name is the caller's call (`event_key`).
    `loads` is a faster JSON parser the caller may bring (it must raise ValueError on bad input).
    """
    value = _load_json(data, loads)
    if not isinstance(value, dict):
        raise InvalidEvent(f"event must be a JSON object, got {_type_name(value)}")
    _check_depth(data, (value,))
    return value


def decode_json_events(data: bytes | str, loads: Callable[[bytes | str], Any] | None = None) -> list[Event]:
    """Decode an HTTP ingest body: one JSON event object, or a JSON array of them (`[]` -> no events).

    Like `decode_json_event`, it checks the shape only; the caller checks each Event-Name.
    """
    value = _load_json(data, loads)
    if isinstance(value, dict):
        _check_depth(data, (value,))
        return [value]
    if not isinstance(value, list):
        raise InvalidEvent(f"events must be a JSON object or an array of objects, got {_type_name(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidEvent(f"event {index} of the array must be a JSON object, got {_type_name(item)}")
    _check_depth(data, value)
    return value


def _parse_header_block(text: str) -> dict[str, str]:
    """Parse `Name: value` lines into a dict, first duplicate winning, values percent-decoded.

    Lines without ": " (a preamble such as `RECV EVENT`) are skipped, except `Name:` (an empty value).
    """
    headers: dict[str, str] = {}
    for line in text.split("\n"):  # not splitlines(): raw \x0b, \x1c... may sit inside a value
        name, sep, value = line.partition(": ")
        if not sep:
            line = line.rstrip(" \r")
            if not line.endswith(":"):
                continue
            name, value = line[:-1], ""
        # The first duplicate wins: FreeSWITCH's switch_event_get_header returns the first.
        if not name or name in headers:
            continue
        value = value.strip(" \r")  # `Name:  value`, trailing padding, the CR of CRLF
        headers[name] = _percent_decode(value) if "%" in value else value
    return headers


def _percent_decode(value: str) -> str:
    """Plain %XX decoding as UTF-8 ('+' stays '+', a malformed % stays literal, bad UTF-8 -> U+FFFD).

    Same result as `unquote(value, errors="replace")`, about 6x faster on SDP-heavy events: once
    backslashes are escaped, `%XX` -> `\\xXX` is exactly what the C-level `codecs.escape_decode` decodes.
    A malformed `%` makes it raise, and the rare value that has one takes the plain `unquote` path.
    """
    try:
        raw = codecs.escape_decode(value.encode().replace(b"\\", b"\\\\").replace(b"%", b"\\x"))[0]
    except ValueError:
        return unquote(value, errors="replace")
    return raw.decode("utf-8", "replace")


def _content_length(value: str, what: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise InvalidEvent(f"{what} Content-Length must be a non-negative integer, got {value[:40]!r}")
    return int(value)


def decode_plain_event(data: bytes | str) -> Event:
    """Decode a `text/event-plain` body: URL-encoded `Name: value` lines, then an optional body.

    An inner `Content-Length: n` before the blank line makes the next n bytes the body, stored as `_body`.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    first = _FIRST_HEADER_LINE.search(raw)
    if first is None:
        raise InvalidEvent("event has no Event-Name")
    start = first.start()
    blank = _BLANK_LINE.search(raw, start)
    block = raw[start:] if blank is None else raw[start : blank.start()]
    event: Event = _parse_header_block(block.decode("utf-8", "replace"))
    length = event.get("Content-Length")
    if length is not None:
        size = _content_length(length, "event")
        body = b"" if blank is None else raw[blank.end() : blank.end() + size]
        event["_body"] = body.decode("utf-8", "replace")
    return _check_event_name(event)


def _dump_value(lines: list[str]) -> Any:
    value = "\n".join(lines)
    first = value[:1]
    if first not in ('"', "{", "["):
        return value
    # Docs write JSON values (`Key: "text"`, `location: {...}`); keeping objects lets templates walk them.
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        return value
    wanted: type | tuple[type, ...] = str if first == '"' else (dict, list)
    return parsed if isinstance(parsed, wanted) else value


def decode_dump_event(text: str) -> Event:
    """Decode a human-readable dump (docs, fs_cli, test clients): values are not URL-encoded.

    A line that is not `Name: value` continues the previous value (multi-line SDP); padding is stripped.
    """
    entries: list[tuple[str, list[str]]] = []
    lines = text.split("\n")
    while lines and not lines[-1].strip(" \r"):
        lines.pop()
    for line in lines:
        line = line.rstrip(" \r")
        match = _DUMP_HEADER_LINE.fullmatch(line)
        if match is not None:
            entries.append((match.group(1), [(match.group(2) or "").strip(" ")]))
        elif entries:
            entries[-1][1].append(line)
        # else: a preamble such as `RECV EVENT`
    event: Event = {}
    for name, value_lines in entries:
        if name not in event:  # first duplicate wins, as in FreeSWITCH
            event[name] = _dump_value(value_lines)
    return _check_event_name(event)


class _RefuseDoctype(ET.TreeBuilder):
    """Tree builder that aborts on a DOCTYPE, so no entity can ever be declared or expanded."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise InvalidEvent("XML event must not contain a DOCTYPE or ENTITY declaration")


def decode_xml_event(data: bytes | str) -> Event:
    """Decode a `text/event-xml` body: `<event><headers><Name>urlencoded</Name>...</headers><body>`."""
    # Safe without defusedxml: the target aborts at any DOCTYPE, and expat never fetches external resources.
    parser = ET.XMLParser(target=_RefuseDoctype())  # noqa: S314
    try:
        parser.feed(data)
        root = parser.close()
    except ET.ParseError as exc:
        raise InvalidEvent(f"event is not valid XML: {exc}") from None
    except (ValueError, RecursionError):
        raise InvalidEvent("event is not valid XML") from None
    if root.tag != "event":
        raise InvalidEvent(f"XML event must have <event> as its root element, got <{root.tag[:40]}>")
    event: Event = {}
    headers = root.find("headers")
    if headers is not None:
        for element in headers:
            if element.tag not in event:  # first duplicate wins, as in FreeSWITCH
                value = element.text or ""
                event[element.tag] = _percent_decode(value) if "%" in value else value
    body = root.find("body")
    if body is not None:
        event["_body"] = body.text or ""
    return _check_event_name(event)


def event_key(event: Event) -> str | None:
    """The hook event name: `Event-Name`, or `Event-Name->Event-Subclass` when the event has a subclass."""
    name = event.get("Event-Name")
    if not isinstance(name, str) or not name:
        return None
    # Webitel appends the subclass whenever the header exists, so presence (not truthiness) decides.
    subclass = event.get("Event-Subclass")
    if isinstance(subclass, str):
        return f"{name}->{subclass}"
    return name


def event_domain(event: Event, domain_headers: Sequence[str] = DEFAULT_DOMAIN_HEADERS) -> str | None:
    """The event's tenant: the first non-empty of `domain_headers` (presence ones after '@'), else None."""
    for header in domain_headers:
        value = event.get(header)
        if not isinstance(value, str):
            continue
        if header in PRESENCE_HEADERS:
            _, at, host = value.partition("@")
            if at:
                value = host
        value = value.strip()
        if value:
            return value
    return None


@dataclass(frozen=True, slots=True)
class Frame:
    """One ESL socket message: its header block (values percent-decoded) and its body bytes."""

    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        """The frame's Content-Type, "" when absent."""
        return self.headers.get("Content-Type", "")


class FrameDecoder:
    """Incremental ESL framing: a header block up to a blank line, then exactly Content-Length body bytes.

    Feed it socket reads of any size. An `InvalidEvent` from `feed` means the stream is not ESL (or is
    hostile) and cannot be resynchronised: drop the connection.
    """

    __slots__ = ("_body_size", "_buffer", "_headers", "_scan_from")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._headers: dict[str, str] | None = None  # a frame whose body has not fully arrived
        self._body_size = 0
        self._scan_from = 0  # where the header terminator search resumes, so a slow header is not rescanned

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return the frames they complete, in order."""
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        pos = 0
        end = len(buffer)
        while True:
            if self._headers is None:
                start = _LEADING_NEWLINES.match(buffer, pos)
                pos = start.end() if start is not None else pos
                terminator = _BLANK_LINE.search(buffer, max(pos, self._scan_from))
                if terminator is None:
                    if end - pos > MAX_FRAME_HEADER_BYTES:
                        raise InvalidEvent(f"ESL frame header block exceeds {MAX_FRAME_HEADER_BYTES} bytes")
                    # The terminator is at most 3 bytes long: rescan only the tail that could hold its start.
                    self._scan_from = max(pos, end - 2)
                    break
                if terminator.start() - pos > MAX_FRAME_HEADER_BYTES:
                    raise InvalidEvent(f"ESL frame header block exceeds {MAX_FRAME_HEADER_BYTES} bytes")
                headers = _parse_header_block(buffer[pos : terminator.start()].decode("utf-8", "replace"))
                pos = terminator.end()
                length = headers.get("Content-Length")
                if length is None:
                    frames.append(Frame(headers, b""))
                    self._scan_from = pos
                    continue
                size = _content_length(length, "ESL frame")
                if size > MAX_FRAME_BODY_BYTES:
                    raise InvalidEvent(f"ESL frame Content-Length {size} exceeds the {MAX_FRAME_BODY_BYTES}-byte limit")
                self._headers = headers
                self._body_size = size
            if end - pos < self._body_size:
                break
            frames.append(Frame(self._headers, bytes(buffer[pos : pos + self._body_size])))
            pos += self._body_size
            self._headers = None
            self._scan_from = pos
        del buffer[:pos]
        self._scan_from = max(0, self._scan_from - pos)
        return frames


def decode_frame_event(frame: Frame) -> Event | None:
    """Decode the event a frame carries; None for frames that are not events (replies, notices, logs)."""
    content_type = frame.content_type
    if content_type == "text/event-json":
        return decode_json_event(frame.body)
    if content_type == "text/event-plain":
        return decode_plain_event(frame.body)
    if content_type == "text/event-xml":
        return decode_xml_event(frame.body)
    return None
