"""The event catalogue without a server: its packaged data is checked, samples are rewritten to a domain, and the
seen-keys map stays within its bounds (HTTP behaviour: tests/api/test_catalogue_api.py)."""

from __future__ import annotations

import pytest

from switchhook.core.catalogue import InvalidCatalogue, for_domain, parse_catalogue
from switchhook.core.events import event_domain
from switchhook.services.catalogue import SeenKeys, packaged_catalogue

DOMAIN = "crm.example"


def test_seen_keys_stay_within_their_bounds() -> None:
    seen = SeenKeys(frozenset({"KNOWN"}), max_domains=2, max_unknown_keys_per_domain=2, max_sample_bytes=200)
    event = {"Event-Name": "X"}
    for second, key in enumerate(["A", "B", "KNOWN", "C"]):
        seen.note("d1", key, event, float(second))
    seen.note("d1", "x" * 300, event, 9.0)  # too long a key: not tracked
    seen.note("d1", "D", {"Event-Name": "D", "big": "x" * 500}, 10.0)  # too large a sample: key kept, no sample
    assert set(seen.seen("d1")) == {"KNOWN", "C", "D"}  # A, then B, forgotten for newer unknown keys
    assert seen.seen("d1")["D"] == (10.0, None)
    assert seen.seen("d1")["KNOWN"] == (2.0, None)
    for domain in ("d2", "d3"):
        seen.note(domain, "KNOWN", event, 11.0)
    assert seen.seen("d1") == {}  # the domain tracked longest gave way
    assert seen.samples_bytes == 0  # and its sample's bytes with it


def test_samples_bytes_are_capped_across_domains() -> None:
    seen = SeenKeys(frozenset(), max_samples_bytes=60)
    for domain in ("d1", "d2", "d3"):
        seen.note(domain, "K", {"Event-Name": "K", "v": "x" * 10}, 0.0)
    assert seen.samples_bytes <= 60
    assert seen.seen("d3")["K"][1] is None  # no room left: seen, without a sample


def test_the_packaged_data_is_checked() -> None:
    entries = packaged_catalogue()
    assert len(entries) >= 30
    sample = b'{"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "u"}'
    wrong_key = {"entries": [{"key": "CHANNEL_CREATE", "description": "d", "fields": [], "sample": "f"}]}
    wrong_field = {"entries": [{"key": "CHANNEL_ANSWER", "description": "d", "fields": ["Nope"], "sample": "f"}]}
    for document in (wrong_key, wrong_field):
        for entry in document["entries"]:
            entry["sampleFormat"] = "json"
        with pytest.raises(InvalidCatalogue):
            parse_catalogue(document, lambda _: sample)


def test_a_sample_without_a_domain_header_gets_the_first_configured_one() -> None:
    event = {"Event-Name": "CUSTOM", "Event-Subclass": "sofia::register", "realm": "pbx.example"}

    rewritten = for_domain(event, DOMAIN, ("variable_w_domain", "variable_domain_name"))

    assert rewritten["variable_w_domain"] == DOMAIN
    assert rewritten["realm"] == "pbx.example"  # nothing to rename: no domain was captured


def test_every_packaged_sample_is_rewritten_to_the_domain_as_a_whole_name() -> None:
    for entry in packaged_catalogue():
        if entry.sample is None:
            continue
        rewritten = for_domain(entry.sample, DOMAIN)
        assert event_domain(rewritten) == DOMAIN, entry.key
        captured = event_domain(entry.sample)
        if captured:
            # The captured domain is gone from every value, except inside longer host names (pre.webitel.com).
            left = [k for k, v in rewritten.items() if isinstance(v, str) and (f"@{captured}" in v or v == captured)]
            assert not left, (entry.key, left)
