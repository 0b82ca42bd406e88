"""Real FreeSWITCH/Webitel event fixtures (shared/fixtures/events), each decoded as its name says."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from switchhook.core.events import (
    Event,
    Frame,
    FrameDecoder,
    decode_dump_event,
    decode_frame_event,
    decode_json_event,
    decode_plain_event,
    decode_xml_event,
)

# parents[2] is the repo (/work/main); the shared/ directory sits beside it, in parents[3].
FIXTURES_DIR = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "events"

_OUTER_CONTENT_LENGTH = re.compile(rb"^Content-Length: (\d+)$", re.MULTILINE)


@cache
def fixture_index() -> tuple[dict[str, Any], ...]:
    """The entries of index.json (metadata derived from the fixture files)."""
    return tuple(json.loads((FIXTURES_DIR / "index.json").read_text(encoding="utf-8")))


def fixture_names() -> list[str]:
    """Every single-event fixture file name (not SOURCES.md, index.json, or the folders of live captures), sorted."""
    return sorted(p.name for p in FIXTURES_DIR.iterdir() if p.is_file() and p.name not in ("SOURCES.md", "index.json"))


def fixture_bytes(name: str) -> bytes:
    """The file exactly as stored."""
    return (FIXTURES_DIR / name).read_bytes()


def is_framed(name: str) -> bool:
    """True when the file starts with ESL frame headers (`*-framed-*`, `esl-stream-*`)."""
    return "-framed-" in name or name.startswith("esl-stream-")


def socket_bytes(name: str) -> bytes:
    """A framed single-event fixture as a switch would really send it.

    Some documentation examples were hand-edited so their outer Content-Length no longer matches the body
    (index.json `content_length_matches: false`); for those the header is corrected to the body's size.
    Captured files (exact Content-Length) and the stream capture are returned unchanged.
    """
    data = fixture_bytes(name)
    if name.startswith("esl-stream-"):
        return data
    head, sep, body = data.partition(b"\n\n")
    match = _OUTER_CONTENT_LENGTH.search(head)
    if not sep or match is None or int(match.group(1)) == len(body):
        return data
    start, end = match.span(1)
    return head[:start] + str(len(body)).encode() + head[end:] + sep + body


def load_fixture_frames(name: str) -> list[Frame]:
    """All complete ESL frames of a framed fixture, through FrameDecoder in one read."""
    return FrameDecoder().feed(socket_bytes(name))


def load_fixture_event(name: str) -> Event:
    """Decode a fixture with the decoder its file-name prefix calls for (see SOURCES.md, "File naming")."""
    if is_framed(name):
        for frame in load_fixture_frames(name):
            event = decode_frame_event(frame)
            if event is not None:
                return event
        raise AssertionError(f"{name}: no event frame")
    data = fixture_bytes(name)
    if name.startswith("esl-plain-decoded-"):
        return decode_dump_event(data.decode("utf-8"))
    if name.startswith("esl-plain-"):
        return decode_plain_event(data)
    if name.startswith("esl-xml-"):
        return decode_xml_event(data)
    if name.startswith(("esl-json-", "json-", "amqp-json-")):
        return decode_json_event(data)
    raise ValueError(f"{name}: no decoder for this fixture name")
