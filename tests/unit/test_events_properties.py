"""Property tests of ESL framing and event decoding: round trips at any chunking, and no crash on junk."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchhook.core.errors import InvalidEvent
from switchhook.core.events import (
    Frame,
    FrameDecoder,
    decode_dump_event,
    decode_json_event,
    decode_json_events,
    decode_plain_event,
    decode_xml_event,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Junk inputs are cheap to try: more of them for the same ~0.3 s.
MANY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# switch_url_encode's SWITCH_URL_UNSAFE; non-ASCII goes out as its UTF-8 bytes, each as %XX.
URL_UNSAFE = frozenset('\r\n #%&+:;<=>?@[\\]^`{|}"')


def fs_url_encode(value: str) -> str:
    """Percent-encode a header value the way FreeSWITCH does on the wire (uppercase hex, space -> %20)."""
    return "".join(
        "".join(f"%{byte:02X}" for byte in char.encode()) if char in URL_UNSAFE or not char.isascii() else char
        for char in value
    )


header_names = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-", min_size=1, max_size=24
).filter(lambda name: name != "Content-Length")
header_values = st.text(max_size=40)
# Bodies that look like headers and blank lines, so a decoder that scans into the body gets caught.
tricky_bodies = st.lists(
    st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\r\n\r\n", b"Content-Length: 5\n", b"x", b"%", b"\xff"]),
    max_size=12,
).map(b"".join)
bodies = st.one_of(st.binary(max_size=200), tricky_bodies)


@st.composite
def frames(draw: st.DrawFn) -> tuple[Frame, bytes]:
    """One frame and its wire bytes; LF or CRLF line ends; Content-Length whenever a body follows."""
    headers = {"Content-Type": draw(header_values)}
    headers.update(draw(st.dictionaries(header_names, header_values, max_size=5)))
    body = draw(bodies)
    if body or draw(st.booleans()):
        headers["Content-Length"] = str(len(body))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    head = "".join(f"{name}: {fs_url_encode(value)}{eol}" for name, value in headers.items()) + eol
    return Frame(headers, body), head.encode() + body


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    bounds = [0, *cuts, len(data)]
    return [data[start:end] for start, end in pairwise(bounds)]


@FAST
@given(st.lists(frames(), min_size=1, max_size=5), st.data())
def test_frame_decoder_any_chunking_yields_the_same_frames(
    expected: list[tuple[Frame, bytes]], data: st.DataObject
) -> None:
    wire = b"".join(raw for _, raw in expected)
    random_cuts = data.draw(chunked(wire))
    # Byte by byte as well: it puts a read boundary inside every `\n\n` / `\r\n\r\n` terminator.
    for chunks in (random_cuts, [wire[i : i + 1] for i in range(len(wire))]):
        decoder = FrameDecoder()
        decoded: list[Frame] = []
        for chunk in chunks:
            decoded += decoder.feed(chunk)
        assert decoded == [frame for frame, _ in expected]


@MANY
@given(
    event_name=header_values.filter(bool),
    headers=st.dictionaries(header_names.filter(lambda n: n != "Event-Name"), header_values, max_size=12),
    eol=st.sampled_from(["\n", "\r\n"]),
)
def test_plain_round_trip(event_name: str, headers: dict[str, str], eol: str) -> None:
    event = {"Event-Name": event_name, **headers}
    wire = "".join(f"{name}: {fs_url_encode(value)}{eol}" for name, value in event.items()) + eol
    decoded = decode_plain_event(wire.encode())
    assert decoded == event
    assert list(decoded) == list(event)


# Raw values a hand-made event might carry: stray and half escapes, backslashes, raw non-ASCII.
escapy_values = st.lists(
    st.one_of(
        st.sampled_from(["%", "%2", "%25", "%41", "%c3%a9", "%C3", "%A9", "%FF", "%zz", "%%", "\\", "\\x41", "x", "+"]),
        st.text(alphabet=st.characters(blacklist_characters="\n\r", blacklist_categories=["Cs"]), max_size=3),
    ),
    max_size=12,
).map("".join)


@MANY
@given(value=escapy_values)
def test_plain_values_decode_like_unquote(value: str) -> None:
    value = value.strip(" ")
    decoded = decode_plain_event(f"Event-Name: X\nA: {value}\n".encode())
    assert decoded["A"] == unquote(value, errors="replace")


junk_pieces = st.sampled_from(
    [
        b"Event-Name: X\n",
        b"Content-Length: ",
        b"Content-Length: 3\n",
        b"Content-Type: text/event-plain\n",
        b"\n",
        b"\r\n",
        b": ",
        b"%",
        b"%2",
        b"%C3",
        b"\xff",
        b"<event>",
        b"<headers>",
        b"<Event-Name>",
        b"</event>",
        b"<!DOCTYPE x>",
        b"&lt;",
        b"{",
        b"}",
        b"[",
        b'"Event-Name":',
        b'"x"',
        b",",
        b"9",
    ]
)
junk = st.one_of(st.binary(max_size=300), st.lists(junk_pieces, max_size=30).map(b"".join))


def only_invalid_event(decode: Callable[[Any], object], data: bytes | str) -> None:
    try:
        decode(data)
    except InvalidEvent as exc:
        assert exc.message


@pytest.mark.parametrize(
    "decode",
    [decode_plain_event, decode_json_event, decode_json_events, decode_xml_event],
    ids=lambda f: f.__name__,
)
@MANY
@given(data=junk)
def test_decoders_raise_only_invalid_event(decode: Callable[[Any], object], data: bytes) -> None:
    only_invalid_event(decode, data)
    only_invalid_event(decode, data.decode("utf-8", "replace"))


@MANY
@given(data=junk)
def test_dump_decoder_raises_only_invalid_event(data: bytes) -> None:
    only_invalid_event(decode_dump_event, data.decode("utf-8", "replace"))


@FAST
@given(data=st.data(), wire=junk)
def test_frame_decoder_raises_only_invalid_event(data: st.DataObject, wire: bytes) -> None:
    decoder = FrameDecoder()
    try:
        for chunk in data.draw(chunked(wire)):
            for frame in decoder.feed(chunk):
                assert isinstance(frame.body, bytes)
    except InvalidEvent as exc:
        assert exc.message
