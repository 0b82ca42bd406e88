"""Owns the event catalogue's rules: what an entry holds, how the packaged data is checked, and how a sample is
rewritten to the caller's domain (docs/catalogue.md). Reading the packaged files is services/catalogue.py's job."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from switchhook.core.events import (
    DEFAULT_DOMAIN_HEADERS,
    PRESENCE_HEADERS,
    Event,
    decode_dump_event,
    decode_json_event,
    decode_plain_event,
    event_domain,
    event_key,
)

#: How a sample file is read: an `event json` body; a mod_amqp capture (freeswitch-1.10.12/amqp/*.json: the exact
#: body is its `body_raw`); an `event plain` body (URL-encoded); a decoded `Name: value` dump (docs, fs_cli).
SAMPLE_FORMATS: Final = ("json", "mod_amqp", "plain", "dump")
#: A description is one line a CRM integrator reads in a list.
MAX_DESCRIPTION_CHARS: Final = 200


class InvalidCatalogue(ValueError):
    """The packaged catalogue data is wrong: a bug of the build, found by tests and at start, never by a caller."""


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One event key a hook can subscribe to. `sample` is a real captured event as captured (None: no capture is
    shipped for this key yet); `sample_file` names it in the package's catalogue/samples/ (SOURCES.md)."""

    key: str
    description: str
    fields: tuple[str, ...]
    sample: Event | None
    sample_file: str | None


def decode_sample(raw: bytes, sample_format: str) -> Event:
    """The event a sample file holds, read as `sample_format` (one of SAMPLE_FORMATS)."""
    if sample_format == "json":
        return decode_json_event(raw)
    if sample_format == "mod_amqp":
        capture = json.loads(raw)
        body = capture.get("body_raw") if isinstance(capture, dict) else None
        if not isinstance(body, str):
            raise InvalidCatalogue("a mod_amqp capture must hold the message body as a string in body_raw")
        return decode_json_event(body)
    if sample_format == "plain":
        return decode_plain_event(raw)
    if sample_format == "dump":
        return decode_dump_event(raw.decode("utf-8"))
    raise InvalidCatalogue(f"unknown sample format {sample_format!r}; one of {', '.join(SAMPLE_FORMATS)}")


def parse_catalogue(document: Any, read_sample: Callable[[str], bytes]) -> tuple[CatalogueEntry, ...]:
    """The entries of the catalogue's data document (catalogue/events.json), each checked: a unique key, a one-line
    description, its sample's own key equal to the entry's, and every listed field present in the sample."""
    entries = document.get("entries") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise InvalidCatalogue("the catalogue document must be an object with an `entries` array")
    parsed: list[CatalogueEntry] = []
    keys: set[str] = set()
    for position, item in enumerate(entries):
        where = f"entry {position}"
        if not isinstance(item, dict):
            raise InvalidCatalogue(f"{where} must be an object")
        key, description, fields = item.get("key"), item.get("description"), item.get("fields")
        if not isinstance(key, str) or not key or key in keys:
            raise InvalidCatalogue(f"{where} must have a unique non-empty string key, got {key!r}")
        keys.add(key)
        where = f"entry {key!r}"
        if not isinstance(description, str) or not description or "\n" in description:
            raise InvalidCatalogue(f"{where} must have a one-line description")
        if len(description) > MAX_DESCRIPTION_CHARS:
            raise InvalidCatalogue(f"{where}: description longer than {MAX_DESCRIPTION_CHARS} characters")
        if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
            raise InvalidCatalogue(f"{where} must list its fields as non-empty strings")
        sample_file = item.get("sample")
        sample: Event | None = None
        if sample_file is not None:
            if not isinstance(sample_file, str) or "/" in sample_file or sample_file.startswith("."):
                raise InvalidCatalogue(f"{where}: sample must be a file name in samples/ or null")
            sample = decode_sample(read_sample(sample_file), str(item.get("sampleFormat")))
            if event_key(sample) != key:
                raise InvalidCatalogue(f"{where}: its sample is a {event_key(sample)!r} event")
            missing = [f for f in fields if f not in sample]
            if missing:
                raise InvalidCatalogue(f"{where}: fields not in its sample: {', '.join(missing)}")
        parsed.append(CatalogueEntry(key, description, tuple(fields), sample, sample_file))
    return tuple(parsed)


def for_domain(sample: Event, domain: str, domain_headers: Sequence[str] = DEFAULT_DOMAIN_HEADERS) -> Event:
    """A copy of `sample` that belongs to `domain`: so that `event_domain(copy, domain_headers) == domain`, and so
    that a dry run or a post of it behaves as the real event would in that domain.

    Every domain header present (the configured ones and the defaults) is rewritten, presence ones keeping their user
    part (`100@old` -> `100@domain`); in any other value the captured domain, as a whole name (`old`, `q1@old`,
    `sofia/internal/9999@old:5070`, `{domain_name=old}`), becomes the new one. A sample that names no domain in any
    configured header (a CUSTOM event sent without channel variables) is given the first configured header."""
    headers = tuple(dict.fromkeys((*domain_headers, *DEFAULT_DOMAIN_HEADERS)))
    captured = event_domain(sample, headers)
    # The captured name as a whole name only: `demo.webitel.com` in `q1@demo.webitel.com` or `domain_name=...}`,
    # never inside `pre.demo.webitel.com` (a host name).
    pattern = re.compile(rf"(?<![\w.-]){re.escape(captured)}(?![\w.-])") if captured else None
    copy: Event = {}
    for name, value in sample.items():
        if isinstance(value, str):
            if name in headers:
                value = _with_domain(name, value, domain)
            elif pattern is not None:
                value = _renamed(value, pattern, domain)
        copy[name] = value
    if event_domain(copy, domain_headers) != domain and domain_headers:
        copy[domain_headers[0]] = domain
    return copy


def _with_domain(header: str, value: str, domain: str) -> str:
    if header in PRESENCE_HEADERS:
        user, at, _ = value.partition("@")
        if at:
            return f"{user}@{domain}"
    return domain


def _renamed(value: str, captured: re.Pattern[str], domain: str) -> str:
    return captured.sub(lambda _: domain, value)


def known_keys(entries: Iterable[CatalogueEntry]) -> frozenset[str]:
    return frozenset(entry.key for entry in entries)
