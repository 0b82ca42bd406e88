"""mod_amqp's routing keys (pure): layouts, mod_amqp's escaping, our binding keys, the settings' presets.

Ground truth: the FreeSWITCH 1.10.12 captures (shared fixtures `freeswitch-1.10.12/amqp/*.json`) and
FreeSWITCH's `src/mod/event_handlers/mod_amqp/mod_amqp_utils.c` (`amqp_util_encode`).
"""

from __future__ import annotations

import pytest

from switchhook.ingest.routing import (
    STOCK_LAYOUT,
    WEBITEL_CC_LAYOUT,
    WEBITEL_LAYOUT,
    Layout,
    bindings_for,
    encode_word,
    encodings,
    resolve_layouts,
)
from tests.support.tap import captures

ODD_SUBCLASS = "my app::call.end now"  # a space, a dot and colons


def layout_of(profile: str, exchange: str) -> Layout:
    if profile == "default":
        return STOCK_LAYOUT
    return WEBITEL_LAYOUT if exchange == "TAP.Events" else WEBITEL_CC_LAYOUT


@pytest.mark.parametrize("profile", ["default", "webitel"])
def test_every_captured_routing_key_is_reproduced_exactly(profile: str) -> None:
    messages = captures(profile)
    assert len(messages) > 90
    for message in messages:
        assert layout_of(profile, message.exchange).routing_key(message.event) == message.routing_key, message.name


@pytest.mark.parametrize("profile", ["default", "webitel"])
def test_every_captured_message_matches_the_bindings_of_its_own_event_key(profile: str) -> None:
    for message in captures(profile):
        event = message.event
        subclass = event.get("Event-Subclass")
        key = event["Event-Name"] + (f"->{subclass}" if subclass is not None else "")
        layout = layout_of(profile, message.exchange)
        cc_layout = WEBITEL_CC_LAYOUT if profile == "webitel" else None
        bound = [k for exchange, k in bindings_for(key, layout, cc_layout) if exchange == message.exchange]
        assert any(topic_matches(k, message.routing_key) for k in bound), (message.name, bound)


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("q1@demo.webitel.com", "q1%40demo%2Ewebitel%2Ecom"),  # as captured
        ("callcenter::info", "callcenter%3A%3Ainfo"),  # as captured
        ("CHANNEL_CREATE", "CHANNEL_CREATE"),
        ("a b", "a+b"),  # not encodeURIComponent's %20
        ("!*'()", "%21%2A%27%28%29"),  # encodeURIComponent would leave these alone
        ("-_~", "-_~"),
        ("sip:a/b?c#d%e+f", "sip%3Aa%2Fb%3Fc%23d%25e%2Bf"),
        ("#", "#"),  # a lone wildcard is copied as it is
        ("*", "*"),
        ("", ""),
        (ODD_SUBCLASS, "my+app%3A%3Acall%2Eend+now"),
    ],
)
def test_words_are_escaped_as_mod_amqp_escapes_them(raw: str, encoded: str) -> None:
    assert encode_word(raw) == encoded


def test_non_ascii_follows_mod_amqps_signed_char_arithmetic_and_binds_both_spellings() -> None:
    # `hexint(C>>4)` of a negative char: 0xC3 -> ',', 0xA9 -> '*' on x86-64; ARM's unsigned char gives C3 A9.
    assert encode_word("é") == "%,3%*9"
    assert encode_word("é", signed_char=False) == "%C3%A9"
    assert encodings("é") == ("%,3%*9", "%C3%A9")
    assert encodings("plain") == ("plain",)
    assert [k for _, k in bindings_for("CUSTOM->é")] == ["*.*.CUSTOM.%,3%*9.*", "*.*.CUSTOM.%C3%A9.*"]


def test_stock_layout_binds_name_and_subclass_words_only() -> None:
    assert bindings_for("CHANNEL_CREATE") == [("TAP.Events", "*.*.CHANNEL_CREATE.*.*")]
    assert bindings_for("CUSTOM->callcenter::info") == [("TAP.Events", "*.*.CUSTOM.callcenter%3A%3Ainfo.*")]
    assert bindings_for("CUSTOM") == [("TAP.Events", "*.*.CUSTOM.*.*")]
    assert bindings_for(f"CUSTOM->{ODD_SUBCLASS}") == [("TAP.Events", "*.*.CUSTOM.my+app%3A%3Acall%2Eend+now.*")]
    assert bindings_for("CHANNEL_CREATE", events_exchange="ev") == [("ev", "*.*.CHANNEL_CREATE.*.*")]


def test_webitel_layouts_bind_custom_subclasses_on_both_exchanges() -> None:
    # webitel/engine-nodejs src/lib/broker/amqp.js `_parseHookEventName`: `*.<name>.<subclass or *>.*.*` on
    # TAP.Events; a CUSTOM subclass is bound on TAP.CC-Events by its subclass word too (either may carry it).
    assert bindings_for("CHANNEL_CREATE", WEBITEL_LAYOUT, WEBITEL_CC_LAYOUT) == [
        ("TAP.Events", "*.CHANNEL_CREATE.*.*.*")
    ]
    assert bindings_for("CUSTOM->callcenter::info", WEBITEL_LAYOUT, WEBITEL_CC_LAYOUT) == [
        ("TAP.Events", "*.CUSTOM.callcenter%3A%3Ainfo.*.*"),
        ("TAP.CC-Events", "*.callcenter%3A%3Ainfo.*.*.*"),
    ]
    assert bindings_for("CUSTOM", WEBITEL_LAYOUT, WEBITEL_CC_LAYOUT) == [("TAP.Events", "*.CUSTOM.*.*.*")]


def test_a_layout_without_event_name_or_subclass_binds_everything() -> None:
    layout = Layout.parse("#FreeSWITCH,FreeSWITCH-Hostname,Unique-ID")
    assert not layout.selective
    assert bindings_for("CHANNEL_CREATE", layout) == [("TAP.Events", "#")]
    subclass_only = Layout.parse("#x,Event-Subclass,Unique-ID")
    assert subclass_only.selective
    assert bindings_for("CUSTOM->a b", subclass_only) == [("TAP.Events", "*.a+b.*")]
    assert bindings_for("CHANNEL_CREATE", subclass_only) == [("TAP.Events", "*.*.*")]


def test_fallback_words_take_the_first_header_present_and_bind_as_wildcards() -> None:
    layout = Layout.parse("#FreeSWITCH, Event-Subclass|Event-Name ,Unique-ID|Core-UUID")
    assert layout.format_fields == "#FreeSWITCH,Event-Subclass|Event-Name,Unique-ID|Core-UUID"
    assert layout.routing_key({"Event-Name": "HEARTBEAT", "Core-UUID": "c.1"}) == "FreeSWITCH.HEARTBEAT.c%2E1"
    assert layout.routing_key({"Event-Name": "CUSTOM", "Event-Subclass": "a::b"}) == "FreeSWITCH.a%3A%3Ab."
    assert not layout.selective  # neither header has a word of its own
    assert bindings_for("HEARTBEAT", layout) == [("TAP.Events", "#")]


def test_settings_take_a_preset_or_the_exact_format_fields_value() -> None:
    assert resolve_layouts("freeswitch") == (STOCK_LAYOUT, None)
    assert resolve_layouts("Webitel") == (WEBITEL_LAYOUT, WEBITEL_CC_LAYOUT)
    assert resolve_layouts("webitel", "none") == (WEBITEL_LAYOUT, None)
    assert resolve_layouts("freeswitch", "webitel") == (STOCK_LAYOUT, WEBITEL_CC_LAYOUT)
    assert resolve_layouts("freeswitch", "freeswitch") == (STOCK_LAYOUT, STOCK_LAYOUT)
    copied = "#FreeSWITCH,FreeSWITCH-Hostname,Event-Name,Event-Subclass,Unique-ID"
    assert resolve_layouts(copied) == (STOCK_LAYOUT, None)  # a value, not a preset: no CC layout implied
    custom, cc = resolve_layouts("#pbx,Event-Name,Event-Subclass", "#pbx,Event-Subclass")
    assert (custom.words, cc) == (("#pbx", "Event-Name", "Event-Subclass"), Layout.parse("#pbx,Event-Subclass"))


@pytest.mark.parametrize("value", ["", "  ", ",".join(["a"] * 11)])
def test_a_layout_mod_amqp_would_refuse_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="format_fields"):
        resolve_layouts(value)


def topic_matches(binding: str, routing_key: str) -> bool:
    """RabbitMQ's topic match: `*` is exactly one word (possibly empty), `#` zero or more."""

    def match(pattern: list[str], words: list[str]) -> bool:
        if not pattern:
            return not words
        head, rest = pattern[0], pattern[1:]
        if head == "#":
            return any(match(rest, words[i:]) for i in range(len(words) + 1))
        return bool(words) and head in ("*", words[0]) and match(rest, words[1:])

    return match(binding.split("."), routing_key.split("."))
