"""Event decoding, event key and event domain, checked against the real fixtures and edge cases."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from switchhook.core.errors import InvalidEvent
from switchhook.core.events import (
    DEFAULT_DOMAIN_HEADERS,
    MAX_FRAME_BODY_BYTES,
    MAX_FRAME_HEADER_BYTES,
    PRESENCE_HEADERS,
    Frame,
    FrameDecoder,
    decode_dump_event,
    decode_frame_event,
    decode_json_event,
    decode_json_events,
    decode_plain_event,
    decode_xml_event,
    event_domain,
    event_key,
)
from tests.support.fixtures import (
    FIXTURES_DIR,
    fixture_bytes,
    fixture_index,
    fixture_names,
    is_framed,
    load_fixture_event,
    load_fixture_frames,
    socket_bytes,
)

STREAM = "esl-stream-outbound-session-neventsocket-Example1.txt"
INDEX = {entry["file"]: entry for entry in fixture_index()}
SINGLE_EVENT_ENTRIES = [entry for entry in fixture_index() if "webitel_hook_event" in entry]


def feed_in_chunks(data: bytes, size: int) -> list[Frame]:
    decoder = FrameDecoder()
    frames: list[Frame] = []
    for offset in range(0, len(data), size):
        frames += decoder.feed(data[offset : offset + size])
    return frames


# --- every fixture -------------------------------------------------------------------------------


def test_index_covers_every_fixture_file() -> None:
    assert sorted(INDEX) == fixture_names()


@pytest.mark.parametrize("name", fixture_names())
def test_every_fixture_decodes(name: str) -> None:
    event = load_fixture_event(name)
    assert isinstance(event["Event-Name"], str)
    entry = INDEX[name]
    if "event_name" in entry:
        assert event["Event-Name"] == entry["event_name"]
        assert event.get("Event-Subclass") == entry.get("event_subclass")
    if "unique_id" in entry:
        assert event["Unique-ID"] == entry["unique_id"]
    for key, value in event.items():
        assert isinstance(key, str)
        assert isinstance(value, str | dict | list), (key, value)


@pytest.mark.parametrize("entry", SINGLE_EVENT_ENTRIES, ids=lambda entry: entry["file"])
def test_key_and_domain_match_webitel(entry: dict[str, Any]) -> None:
    event = load_fixture_event(entry["file"])
    assert event_key(event) == entry["webitel_hook_event"]
    # Webitel's getDomain() where it found one, else the two headers switchhook adds after Webitel's four.
    expected = entry["webitel_getDomain"]
    if expected is None:
        extra = entry["domain_headers"]
        expected = extra.get("variable_dialed_domain") or extra.get("Event-Domain")
    assert event_domain(event) == expected


@pytest.mark.parametrize("name", [n for n in fixture_names() if is_framed(n) and n != STREAM])
def test_framed_fixture_is_exactly_one_event_frame(name: str) -> None:
    frames = load_fixture_frames(name)
    assert len(frames) == 1
    assert frames[0].content_type == INDEX[name]["outer_content_type"]
    if INDEX[name]["content_length_matches"]:
        assert socket_bytes(name) == fixture_bytes(name)  # captured bytes go through untouched


# --- the recorded outbound session ---------------------------------------------------------------


def stream_summary(frames: list[Frame]) -> tuple[Counter[str], Counter[str]]:
    types = Counter(frame.content_type for frame in frames)
    names: Counter[str] = Counter()
    for frame in frames:
        event = decode_frame_event(frame)
        # The `connect` reply carries the CHANNEL_DATA dump in its header block.
        source = event if event is not None else frame.headers
        if "Event-Name" in source:
            names[source["Event-Name"]] += 1
    return types, names


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 1000, 4096, 1 << 20])
def test_stream_capture_yields_every_frame_at_any_chunking(chunk_size: int) -> None:
    frames = feed_in_chunks(fixture_bytes(STREAM), chunk_size)
    assert len(frames) == 27
    types, names = stream_summary(frames)
    assert types == Counter(INDEX[STREAM]["frames_content_types"])
    assert names == Counter(INDEX[STREAM]["event_names"])


def test_stream_capture_frame_details() -> None:
    frames = load_fixture_frames(STREAM)
    connect = frames[0]
    assert connect.content_type == "command/reply"
    assert connect.headers["Event-Name"] == "CHANNEL_DATA"
    assert connect.headers["Reply-Text"] == "+OK\n"  # %2BOK%0A
    assert connect.headers["Channel-Presence-ID"] == "1001@172.16.50.134"
    assert connect.body == b""
    assert decode_frame_event(connect) is None

    notices = [frame for frame in frames if frame.content_type == "text/disconnect-notice"]
    assert [n.headers["Content-Disposition"] for n in notices] == ["linger", "disconnect"]
    assert notices[0].headers["Content-Length"] == "0"
    assert notices[0].body == b""
    assert notices[1].body == b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
    assert all(decode_frame_event(n) is None for n in notices)

    api = [frame for frame in frames if frame.content_type == "api/response"]
    assert [len(frame.body) for frame in api] == [4, 4]

    # A linger notice is followed by more events (gotcha 5).
    after = frames[frames.index(notices[0]) + 1]
    event = decode_frame_event(after)
    assert event is not None
    assert event["Event-Name"] == "CHANNEL_HANGUP"


# --- specific fixtures ---------------------------------------------------------------------------


def test_dtmf_digit_is_url_decoded() -> None:
    event = load_fixture_event("esl-plain-framed-DTMF-neventsocket.txt")
    assert event["DTMF-Digit"] == "#"
    assert event_domain(event) == "dan-win8-dev.home"


def test_sofia_register_subclass_is_url_decoded() -> None:
    event = load_fixture_event("esl-plain-CUSTOM-sofia__register-freeswitch-docs.txt")
    assert event["Event-Subclass"] == "sofia::register"
    assert event_key(event) == "CUSTOM->sofia::register"
    assert list(event).index("Event-Subclass") == 0  # the duplicate kept the first position
    # Decoded once only: the inner %25-escaped path stays percent-encoded.
    assert event["contact"] == (
        '"1000" <sip:1000@192.168.1.23:5060;fs_nat=yes;fs_path=sip%3A1000%40192.168.1.23%3A5060>'
    )
    assert event_domain(event) is None  # only from-host/realm carry a host: no hook can match


def test_first_duplicate_header_wins() -> None:
    data = b"Event-Name: CUSTOM\nEvent-Subclass: sofia%3A%3Aregister\nEvent-Subclass: other\nA: 1\n\n"
    event = decode_plain_event(data)
    assert event_key(event) == "CUSTOM->sofia::register"
    assert list(event) == ["Event-Name", "Event-Subclass", "A"]


def test_plus_is_not_a_space() -> None:
    event = decode_plain_event(b"Event-Name: CHANNEL_EXECUTE\nApplication-Data: sched_hangup%20%2B3120\n")
    assert event["Application-Data"] == "sched_hangup +3120"
    event = decode_plain_event(b"Event-Name: X\nA: a+b\nB: a+b%20c\n")
    assert event["A"] == "a+b"
    assert event["B"] == "a+b c"


def test_genesis_body_lands_in_body_exactly() -> None:
    event = load_fixture_event("esl-plain-CUSTOM-mod_audio_stream__play-genesis.txt")
    expected = '{"audioDataType":"raw","sampleRate":16000,"file":"/tmp/84e7dad0-dc1e-4234-8c56-5688e2069d99_0.tmp.r16"}'
    assert event["_body"] == expected
    assert len(event["_body"].encode()) == 103
    assert event["Content-Length"] == "103"
    assert json.loads(event["_body"])["sampleRate"] == 16000
    # The sample leaves ':' unencoded; decoding does not care.
    assert event["Event-Date-Local"] == "2024-08-16 13:46:02"


def test_background_job_inner_body() -> None:
    event = load_fixture_event("esl-plain-framed-BACKGROUND_JOB-freeswitch-docs.txt")
    assert event["_body"] == "+OK 7f4de4bc-17d7-11dd-b7a0-db4edd065621\n"
    assert event["Content-Length"] == "41"
    assert event["Job-Command-Arg"] == "sofia/default/1005 '&park'"


def test_neventsocket_bridge_domain_name_beats_presence() -> None:
    event = load_fixture_event("esl-plain-framed-CHANNEL_BRIDGE-neventsocket.txt")
    assert event["Channel-Presence-ID"] == "1001@172.16.50.134"
    assert event["variable_domain_name"] == "dan-win8-dev.home"
    assert event_domain(event) == "dan-win8-dev.home"


def test_custom_domain_headers_order_changes_result() -> None:
    event = load_fixture_event("esl-plain-framed-CHANNEL_BRIDGE-neventsocket.txt")
    assert event_domain(event, ("Channel-Presence-ID", "variable_domain_name")) == "172.16.50.134"
    assert event_domain(event, ["variable_sip_from_host"]) == event["variable_sip_from_host"]
    assert event_domain(event, ()) is None


def test_callback_member_add_json_values() -> None:
    event = load_fixture_event("esl-plain-decoded-CUSTOM-engine__callback_member_add-webitel-docs-en.txt")
    assert event["Event-Name"] == "CUSTOM"  # `"CUSTOM"` unquoted
    assert event["variable_domain_name"] == "demo.webitel.com"
    location = event["location"]
    assert isinstance(location, dict)
    assert location["city"] == "Lviv"
    assert location["latitude"] == 49.8407
    assert isinstance(event["logs"], list)
    assert event["logs"][0]["log"] == "Open page https://webitel.com/"
    # Bare JSON scalars stay strings: event values are strings.
    assert event["done"] == "false"
    assert event["callback_time"] == "1502457300000"


def test_hangup_complete_dump_quirks() -> None:
    event = load_fixture_event("esl-plain-decoded-CHANNEL_HANGUP_COMPLETE-freeswitch-docs.txt")
    assert "RECV EVENT" not in "".join(event)
    assert next(iter(event)) == "Event-Name"
    assert event["FreeSWITCH-Hostname"] == "myhost"  # padding stripped
    assert event["FreeSWITCH-IPv6"] == "::1"  # not URL-decoded, nothing to decode
    sdp = event["variable_switch_r_sdp"]
    assert sdp.startswith("v=0\no=Z 0 0 IN IP4 190.52.138.225\ns=Z\n")
    assert "a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15" in sdp
    assert not any(line.endswith(" ") for line in sdp.split("\n"))


def test_greenswitch_multiline_sdp_and_empty_value() -> None:
    event = load_fixture_event("esl-plain-decoded-CHANNEL_CREATE-greenswitch.txt")
    sdp = event["variable_switch_r_sdp"]
    assert "\nm=audio 4016 RTP/AVP 103 102 104 109 3 0 8 9 101\n" in sdp
    assert "b=AS:84" in sdp  # a `x=y:z` line is a continuation, not a header
    end = load_fixture_event("esl-plain-decoded-CUSTOM-engine__dialer_member_end-webitel-docs-en.txt")
    assert end["variable_dlr_member_number_description"] == ""


def test_outbound_answer_double_space_separator() -> None:
    event = load_fixture_event("esl-plain-CHANNEL_ANSWER-outbound-freeswitch-docs.txt")
    assert event["Answer-State"] == "answered"
    assert event["Caller-Callee-ID-Name"] == "Outbound Call"
    assert event["variable_switch_r_sdp"].startswith("v=0\r\no=aztrock-home")


def test_xml_fixture_values_are_url_decoded() -> None:
    event = load_fixture_event("esl-xml-framed-CHANNEL_DESTROY-lua-lluv-esl.xml")
    assert event["FreeSWITCH-IPv6"] == "::1"
    assert event["Event-Date-GMT"] == "Thu, 03 Aug 2017 11:40:13 GMT"
    assert "_body" not in event


def test_same_event_in_three_formats_agrees() -> None:
    plain = load_fixture_event("esl-plain-framed-CHANNEL_DESTROY-lua-lluv-esl.txt")
    as_json = load_fixture_event("esl-json-framed-CHANNEL_DESTROY-lua-lluv-esl.txt")
    as_xml = load_fixture_event("esl-xml-framed-CHANNEL_DESTROY-lua-lluv-esl.xml")
    for event in (plain, as_json, as_xml):
        assert event["Event-Name"] == "CHANNEL_DESTROY"
        assert event["FreeSWITCH-IPv6"] == "::1"
        assert event["Event-Date-Local"].startswith("2017-08-03 ")


# --- framing -------------------------------------------------------------------------------------


def test_crlf_framing() -> None:
    body = b"Event-Name: HEARTBEAT\r\nCore-UUID: abc\r\nEvent-Info: System%20Ready\r\n\r\n"
    frame = b"Content-Length: %d\r\nContent-Type: text/event-plain\r\n\r\n" % len(body) + body
    reply = b"Content-Type: command/reply\r\nReply-Text: +OK accepted\r\n\r\n"
    for size in (1, 2, 3, 5, len(frame) + len(reply)):
        frames = feed_in_chunks(reply + frame, size)
        assert [f.content_type for f in frames] == ["command/reply", "text/event-plain"]
        assert frames[0].headers == {"Content-Type": "command/reply", "Reply-Text": "+OK accepted"}
        event = decode_frame_event(frames[1])
        assert event == {"Event-Name": "HEARTBEAT", "Core-UUID": "abc", "Event-Info": "System Ready"}


def test_crlf_fixture_converted() -> None:
    original = fixture_bytes("esl-plain-framed-CHANNEL_BRIDGE-neventsocket.txt")
    _, _, body = original.partition(b"\n\n")
    body = body.replace(b"\n", b"\r\n")
    data = b"Content-Length: %d\r\nContent-Type: text/event-plain\r\n\r\n" % len(body) + body
    event = decode_frame_event(FrameDecoder().feed(data)[0])
    assert event == load_fixture_event("esl-plain-framed-CHANNEL_BRIDGE-neventsocket.txt")


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_frame_split_mid_terminator_and_body(eol: bytes) -> None:
    data = b"Content-Type: api/response%sContent-Length: 4%s%s+OK\n" % (eol, eol, eol) * 2
    expected = [Frame({"Content-Type": "api/response", "Content-Length": "4"}, b"+OK\n")] * 2
    for cut in range(1, len(data)):
        decoder = FrameDecoder()
        assert decoder.feed(data[:cut]) + decoder.feed(data[cut:]) == expected
    for first in range(1, len(data)):
        for second in range(first + 1, min(first + 4, len(data))):
            decoder = FrameDecoder()
            parts = (data[:first], data[first:second], data[second:])
            assert [frame for part in parts for frame in decoder.feed(part)] == expected


def test_body_may_contain_blank_lines() -> None:
    body = b"a\n\nb\r\n\r\n"
    data = b"Content-Length: %d\nContent-Type: x/y\n\n" % len(body) + body + b"Content-Type: z\n\n"
    frames = FrameDecoder().feed(data)
    assert [f.body for f in frames] == [body, b""]
    assert frames[1].content_type == "z"


def test_content_type_is_empty_when_absent() -> None:
    assert Frame({}, b"").content_type == ""
    assert decode_frame_event(Frame({"Content-Length": "0"}, b"")) is None
    assert decode_frame_event(Frame({"Content-Type": "log/data"}, b"Event-Name: X\n")) is None


def test_frame_event_decoders_by_content_type() -> None:
    json_frame = Frame({"Content-Type": "text/event-json"}, b'{"Event-Name": "API"}')
    assert decode_frame_event(json_frame) == {"Event-Name": "API"}
    xml_frame = Frame(
        {"Content-Type": "text/event-xml"},
        b"<event><headers><Event-Name>API</Event-Name></headers></event>",
    )
    assert decode_frame_event(xml_frame) == {"Event-Name": "API"}


def test_frame_header_block_limit() -> None:
    decoder = FrameDecoder()
    with pytest.raises(InvalidEvent, match="header block exceeds"):
        decoder.feed(b"X-Pad: " + b"a" * MAX_FRAME_HEADER_BYTES + b"\n")
    decoder = FrameDecoder()
    with pytest.raises(InvalidEvent, match="header block exceeds"):
        decoder.feed(b"X-Pad: " + b"a" * MAX_FRAME_HEADER_BYTES + b"\n\n")
    # Just under the limit is fine, even arriving in small pieces.
    header = b"Content-Type: a/b\nX-Pad: " + b"a" * (MAX_FRAME_HEADER_BYTES - 100) + b"\n\n"
    assert len(feed_in_chunks(header, 1000)) == 1


@pytest.mark.parametrize(
    "value", [b"abc", b"-1", b"1.5", b"", b"\xd9\xa3", b"+5", str(MAX_FRAME_BODY_BYTES + 1).encode()]
)
def test_frame_content_length_guard(value: bytes) -> None:
    with pytest.raises(InvalidEvent, match="Content-Length"):
        FrameDecoder().feed(b"Content-Type: text/event-plain\nContent-Length: " + value + b"\n\n")


def test_frame_content_length_at_limit_waits_for_body() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"Content-Length: %d\n\n" % MAX_FRAME_BODY_BYTES) == []
    assert decoder.feed(b"x" * 10) == []


def test_blank_lines_between_frames_are_skipped() -> None:
    frames = FrameDecoder().feed(b"\n\r\nContent-Type: a\n\n\n\nContent-Type: b\n\n")
    assert [f.content_type for f in frames] == ["a", "b"]


# --- plain ---------------------------------------------------------------------------------------


def test_plain_percent_decoding_rules() -> None:
    data = "Event-Name: X\nA: 100%\nB: %zz%4\nC: caf%C3%A9\nD: %FF\nE: %2525\nF: raw é\n".encode()
    event = decode_plain_event(data)
    assert event["A"] == "100%"
    assert event["B"] == "%zz%4"
    assert event["C"] == "café"
    assert event["D"] == "\ufffd"
    assert event["E"] == "%25"
    assert event["F"] == "raw é"


def test_plain_accepts_str_crlf_and_spacing() -> None:
    text = "RECV EVENT\r\n\r\nEvent-Name:  HEARTBEAT   \r\nEmpty: \r\nBare:\r\nLead: %20x%20\r\n\r\n"
    assert decode_plain_event(text) == {
        "Event-Name": "HEARTBEAT",
        "Empty": "",
        "Bare": "",
        "Lead": " x ",
    }


def test_plain_ignores_preamble_and_what_follows_the_headers() -> None:
    event = decode_plain_event(b"garbage line\nhttp://example\nEvent-Name: X\n\nNot-A-Header: 1\n")
    assert event == {"Event-Name": "X"}


def test_plain_inner_body_shorter_than_announced() -> None:
    event = decode_plain_event(b"Event-Name: BACKGROUND_JOB\nContent-Length: 100\n\n+OK done\n")
    assert event["_body"] == "+OK done\n"
    event = decode_plain_event(b"Event-Name: BACKGROUND_JOB\nContent-Length: 3\n\n+OK done\n")
    assert event["_body"] == "+OK"
    event = decode_plain_event(b"Event-Name: BACKGROUND_JOB\nContent-Length: 3")
    assert event["_body"] == ""


def test_plain_inner_body_counts_bytes_not_characters() -> None:
    body = "é\n\nx".encode()
    event = decode_plain_event(b"Event-Name: X\nContent-Length: %d\n\n" % len(body) + body + b"tail")
    assert event["_body"] == "é\n\nx"


def test_plain_invalid_inner_content_length() -> None:
    with pytest.raises(InvalidEvent, match="Content-Length must be a non-negative integer"):
        decode_plain_event(b"Event-Name: X\nContent-Length: many\n\nbody")


@pytest.mark.parametrize(
    "data", [b"", b"\n\n", b"RECV EVENT\n", b"Core-UUID: x\n", b"Event-Name: \n", b"Event-Name:\n", b"{}"]
)
def test_plain_without_event_name(data: bytes) -> None:
    with pytest.raises(InvalidEvent, match=r"^event has no Event-Name$"):
        decode_plain_event(data)


# --- json ----------------------------------------------------------------------------------------


def test_json_pretty_printed_over_lines() -> None:
    data = b'{\n\t"Event-Name":\t"CHANNEL_CREATE",\n\t"Array":\t["a", "b"]\n}\n'
    assert decode_json_event(data) == {"Event-Name": "CHANNEL_CREATE", "Array": ["a", "b"]}


def test_json_values_kept_as_given() -> None:
    event = decode_json_event('{"Event-Name": "X", "n": 1, "b": true, "o": {"k": null}}')
    assert event == {"Event-Name": "X", "n": 1, "b": True, "o": {"k": None}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[]", "must be a JSON object, got array"),
        (b'"x"', "must be a JSON object, got string"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe\xfd", "not valid JSON"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_json_event_errors(data: bytes, message: str) -> None:
    with pytest.raises(InvalidEvent, match=message):
        decode_json_event(data)


def test_json_leaves_the_event_name_check_to_the_caller() -> None:
    assert decode_json_event(b"{}") == {}
    assert event_key(decode_json_event(b'{"Event-Name": 5}')) is None
    assert decode_json_events(b'[{"Event-Name": "A"}, {}]') == [{"Event-Name": "A"}, {}]


def test_json_events_accepts_object_array_and_empty_array() -> None:
    assert decode_json_events(b'{"Event-Name": "A"}') == [{"Event-Name": "A"}]
    assert decode_json_events('[{"Event-Name": "A"}, {"Event-Name": "B"}]') == [
        {"Event-Name": "A"},
        {"Event-Name": "B"},
    ]
    assert decode_json_events(b" [ ] ") == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'[{"Event-Name": "A"}, 7]', "event 1 of the array must be a JSON object, got number"),
        (b"null", "must be a JSON object or an array of objects, got null"),
        (b"not json", "not valid JSON"),
    ],
)
def test_json_events_errors(data: bytes, message: str) -> None:
    with pytest.raises(InvalidEvent, match=message):
        decode_json_events(data)


# --- xml -----------------------------------------------------------------------------------------


def test_xml_body_and_duplicates() -> None:
    data = (
        b"<event><headers><Event-Name>BACKGROUND_JOB</Event-Name><A>1%202</A><A>second</A><Empty/>"
        b"<Content-Length>9</Content-Length></headers><body>+OK a&amp;b</body></event>"
    )
    assert decode_xml_event(data) == {
        "Event-Name": "BACKGROUND_JOB",
        "A": "1 2",
        "Empty": "",
        "Content-Length": "9",
        "_body": "+OK a&b",
    }


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    "<event><headers><Event-Name>&lol2;</Event-Name></headers></event>"
)


@pytest.mark.parametrize(
    "data",
    [
        BILLION_LAUGHS,
        BILLION_LAUGHS.encode(),
        BILLION_LAUGHS.replace('"1.0"?>', '"1.0" encoding="UTF-16"?>').encode("utf-16"),
        '<!DOCTYPE event SYSTEM "file:///etc/passwd"><event/>',
    ],
)
def test_xml_refuses_doctype(data: str | bytes) -> None:
    with pytest.raises(InvalidEvent, match="DOCTYPE"):
        decode_xml_event(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<event><headers>", "not valid XML"),
        (b"", "not valid XML"),
        (b"<other/>", "root element, got <other>"),
        (b"<event><headers><A>1</A></headers></event>", "event has no Event-Name"),
    ],
)
def test_xml_errors(data: bytes, message: str) -> None:
    with pytest.raises(InvalidEvent, match=message):
        decode_xml_event(data)


# --- dumps ---------------------------------------------------------------------------------------


def test_dump_rules() -> None:
    text = (
        "RECV EVENT\n"
        "Event-Name: CUSTOM     \n"
        'Event-Subclass: "engine::x"\n'
        "Event-Subclass: second\n"
        "Multi: line one   \n"
        "line two\n"
        "\n"
        "Json: [1, 2]\n"
        "Bad-Json: {not json\n"
        'Quoted-Number: "12"\n'
        'Half-Quoted: "abc\n'
        "\n\n"
    )
    assert decode_dump_event(text) == {
        "Event-Name": "CUSTOM",
        "Event-Subclass": "engine::x",
        "Multi": "line one\nline two\n",
        "Json": [1, 2],
        "Bad-Json": "{not json",
        "Quoted-Number": "12",
        "Half-Quoted": '"abc',
    }


def test_dump_without_event_name() -> None:
    with pytest.raises(InvalidEvent, match=r"^event has no Event-Name$"):
        decode_dump_event("RECV EVENT\nCore-UUID: x\n")


# --- event key and domain ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "key"),
    [
        ({"Event-Name": "CHANNEL_CREATE"}, "CHANNEL_CREATE"),
        (
            {"Event-Name": "CUSTOM", "Event-Subclass": "engine::dialer_member_end"},
            "CUSTOM->engine::dialer_member_end",
        ),
        ({"Event-Name": "CUSTOM", "Event-Subclass": ""}, "CUSTOM->"),  # Webitel: presence, not truthiness
        ({"Event-Name": "CUSTOM", "Event-Subclass": ["a"]}, "CUSTOM"),
        ({"Event-Subclass": "x"}, None),
        ({"Event-Name": ""}, None),
        ({"Event-Name": 5}, None),
        ({}, None),
    ],
)
def test_event_key(event: dict[str, Any], key: str | None) -> None:
    assert event_key(event) == key


@pytest.mark.parametrize(
    ("event", "domain"),
    [
        ({"variable_domain_name": "a.com", "variable_w_domain": "b.com"}, "a.com"),
        ({"variable_domain_name": "  ", "variable_w_domain": "b.com"}, "b.com"),
        ({"variable_domain_name": "", "Channel-Presence-ID": "100@c.com"}, "c.com"),
        ({"Channel-Presence-ID": "100@", "variable_presence_id": "1@d.com"}, "d.com"),
        ({"Channel-Presence-ID": "a@b@e.com"}, "b@e.com"),
        ({"Channel-Presence-ID": "no-at-sign"}, "no-at-sign"),
        ({"variable_dialed_domain": "f.com", "Event-Domain": "g.com"}, "f.com"),
        ({"Event-Domain": " g.com "}, "g.com"),
        ({"variable_domain_name": {"x": 1}, "Event-Domain": "h.com"}, "h.com"),
        ({"Domain-Name": "i.com", "CC-Queue": "q@i.com"}, None),
        ({}, None),
    ],
)
def test_event_domain(event: dict[str, Any], domain: str | None) -> None:
    assert event_domain(event) == domain


def test_presence_rule_follows_header_not_position() -> None:
    assert PRESENCE_HEADERS.issubset(DEFAULT_DOMAIN_HEADERS)
    event = {"Channel-Presence-ID": "1@x.com", "variable_dialed_domain": "1@y.com"}
    assert event_domain(event, ["variable_dialed_domain"]) == "1@y.com"
    assert event_domain(event, ["Channel-Presence-ID"]) == "x.com"


LIVE_DIR = FIXTURES_DIR / "freeswitch-1.10.12"
LIVE_FILES = sorted(p.relative_to(LIVE_DIR).as_posix() for p in LIVE_DIR.glob("*/*.json"))


def test_live_captures_are_there() -> None:
    # The live FreeSWITCH 1.10.12 captures (both producer profiles, ESL and mod_amqp) are this suite's ground truth.
    assert len([f for f in LIVE_FILES if f.startswith("esl/")]) >= 30
    assert len([f for f in LIVE_FILES if f.startswith("amqp/")]) >= 200


@pytest.mark.parametrize("name", LIVE_FILES)
def test_every_live_capture_decodes_to_its_event(name: str) -> None:
    """Each captured body decodes; the key is the one its file name says; every header value is a string."""
    capture = json.loads((LIVE_DIR / name).read_text(encoding="utf-8"))
    raw = capture["body_raw"] if name.startswith("amqp/") else json.dumps(capture)
    event = decode_json_event(raw)
    if name.startswith("amqp/"):
        assert event == capture["body"]  # mod_amqp's exact bytes decode to what was parsed at capture
    file_event = name.split("-", 3)[3].removesuffix(".json")
    expected_key = event["Event-Name"]
    if "Event-Subclass" in event:
        expected_key = f"CUSTOM->{event['Event-Subclass']}"
        assert file_event == "CUSTOM-" + event["Event-Subclass"].replace("::", "_")
    else:
        assert file_event == event["Event-Name"]
    assert event_key(event) == expected_key
    assert all(isinstance(value, str) for value in event.values() if not isinstance(value, dict | list))
