"""Owns mod_amqp's routing keys: `format_fields` layouts, mod_amqp's escaping of each word, our binding keys.

mod_amqp is the producer, so its spelling is the one a binding must match. The behaviour reproduced here is
FreeSWITCH's `src/mod/event_handlers/mod_amqp/mod_amqp_producer.c` (`mod_amqp_producer_routing_key`) and
`mod_amqp_utils.c` (`amqp_util_encode`), checked against the routing keys captured from FreeSWITCH 1.10.12
(shared fixtures `freeswitch-1.10.12/amqp/*.json`); docs/freeswitch.md explains the settings built on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

#: What FreeSWITCH's shipped `amqp.conf.xml` publishes with: `FreeSWITCH.<host>.<name>.<subclass>.<uuid>`.
STOCK_FORMAT_FIELDS: Final = "#FreeSWITCH,FreeSWITCH-Hostname,Event-Name,Event-Subclass,Unique-ID"
#: Webitel's FreeSWITCH config: channel events on TAP.Events...
WEBITEL_FORMAT_FIELDS: Final = (
    "#FreeSWITCH-Hostname,Event-Name,Event-Subclass,Channel-Presence-ID,Channel-Presence-Data"
)
#: ...and CUSTOM events (callcenter) on TAP.CC-Events.
WEBITEL_CC_FORMAT_FIELDS: Final = "#FreeSWITCH-Hostname,Event-Subclass,CC-Action,CC-Queue,Unique-ID"

#: Preset name -> (events exchange layout, CC exchange layout or None).
PRESETS: Final[Mapping[str, tuple[str, str | None]]] = {
    "freeswitch": (STOCK_FORMAT_FIELDS, None),
    "webitel": (WEBITEL_FORMAT_FIELDS, WEBITEL_CC_FORMAT_FIELDS),
}
NO_LAYOUT: Final = "none"

_EVENT_NAME: Final = "Event-Name"
_EVENT_SUBCLASS: Final = "Event-Subclass"
_CUSTOM: Final = "CUSTOM"
# mod_amqp.h: MAX_ROUTING_KEY_FORMAT_FIELDS; mod_amqp refuses a profile with more words.
MAX_WORDS: Final = 10
# amqp_util_encode's KEY_SAFE: the bytes it copies as they are.
_KEY_SAFE: Final = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-~_")


def encode_word(value: str, *, signed_char: bool = True) -> str:
    """One routing-key word as mod_amqp's `amqp_util_encode` writes a header value.

    Alphanumerics and `-~_` stay, `.` is `%2E`, a space is `+`, every other byte is `%` and two upper-case
    hex digits; a value that is exactly `#` or `*` stays as it is. The C code reads bytes as `char`: where
    that is signed (x86-64, FreeSWITCH's usual build) a byte >= 0x80 gets a high "digit" from `(` to `/`
    instead of 8-F (`é` = C3 A9 -> `%,3%*9`); `signed_char=False` gives the unsigned-char (ARM) spelling.
    """
    if value in ("#", "*"):
        return value
    out: list[str] = []
    for byte in value.encode("utf-8", "surrogatepass"):
        if byte in _KEY_SAFE:
            out.append(chr(byte))
        elif byte == 0x2E:
            out.append("%2E")
        elif byte == 0x20:
            out.append("+")
        else:
            high, low = byte >> 4, byte & 0x0F
            # hexint(C): C < 10 ? '0' + C : 'A' + C - 10, where C>>4 of a negative char is negative.
            high_char = chr(0x30 + high - 16) if signed_char and high >= 8 else _hex_digit(high)
            out.append(f"%{high_char}{_hex_digit(low)}")
    return "".join(out)


def _hex_digit(nibble: int) -> str:
    return "0123456789ABCDEF"[nibble]


def encodings(value: str) -> tuple[str, ...]:
    """The spellings mod_amqp may give this value (signed-char build first; both when they differ)."""
    signed, unsigned = encode_word(value), encode_word(value, signed_char=False)
    return (signed,) if signed == unsigned else (signed, unsigned)


@dataclass(frozen=True)
class Layout:
    """A mod_amqp producer profile's routing-key layout, its `format_fields` value split into words.

    A word is `#literal` (copied as it is), a header name, or (with `enable_fallback_format_fields`)
    `A|B`: the first of those headers the event has. An absent header leaves an empty word.
    """

    format_fields: str
    words: tuple[str, ...]

    @classmethod
    def parse(cls, format_fields: str) -> Layout:
        """Parse a `format_fields` value as written in amqp.conf.xml; ValueError when mod_amqp would refuse it."""
        text = format_fields.strip()
        if not text:
            raise ValueError("an empty format_fields layout")
        words = tuple(word.strip() for word in text.split(","))
        if len(words) > MAX_WORDS:
            raise ValueError(f"mod_amqp allows at most {MAX_WORDS} format_fields words, got {len(words)}")
        return cls(",".join(words), words)

    def position(self, header: str) -> int | None:
        """Where `header` (alone, not as a fallback) fills a word; None when it does not."""
        for index, word in enumerate(self.words):
            if word == header:
                return index
        return None

    @property
    def selective(self) -> bool:
        """Whether bindings can name the event: the layout has an Event-Name or an Event-Subclass word."""
        return self.position(_EVENT_NAME) is not None or self.position(_EVENT_SUBCLASS) is not None

    def routing_key(self, event: Mapping[str, object]) -> str:
        """The routing key mod_amqp publishes this event with under this layout (signed-char build)."""
        parts: list[str] = []
        for word in self.words:
            if word.startswith("#"):
                parts.append(word[1:])
                continue
            value = ""
            for header in word.split("|"):
                found = event.get(header)
                if found is not None:
                    value = encode_word(found if isinstance(found, str) else str(found))
                    break
            parts.append(value)
        return ".".join(parts)

    def bindings(self, name: str, subclass: str | None) -> list[str]:
        """Binding keys routing every event of this name (and subclass, when given) to us.

        `*` for every word but the Event-Name and Event-Subclass ones (`*` also matches the empty word of
        an absent header); `#` (everything, filtered in process) when the layout has neither.
        """
        name_at, subclass_at = self.position(_EVENT_NAME), self.position(_EVENT_SUBCLASS)
        if name_at is None and subclass_at is None:
            return ["#"]
        keys: list[str] = []
        for name_word in encodings(name) if name_at is not None else ("*",):
            for subclass_word in encodings(subclass) if subclass and subclass_at is not None else ("*",):
                words = ["*"] * len(self.words)
                if name_at is not None:
                    words[name_at] = name_word
                if subclass_at is not None:
                    words[subclass_at] = subclass_word
                keys.append(".".join(words))
        return keys


STOCK_LAYOUT: Final = Layout.parse(STOCK_FORMAT_FIELDS)
WEBITEL_LAYOUT: Final = Layout.parse(WEBITEL_FORMAT_FIELDS)
WEBITEL_CC_LAYOUT: Final = Layout.parse(WEBITEL_CC_FORMAT_FIELDS)


def resolve_layouts(format_fields: str, cc_format_fields: str = "") -> tuple[Layout, Layout | None]:
    """The (events exchange, CC exchange) layouts of `SWITCHHOOK_AMQP_FORMAT_FIELDS` / `..._CC_FORMAT_FIELDS`.

    Each is a preset name (`freeswitch`, `webitel`) or a `format_fields` value. An empty CC setting follows
    the events preset (webitel: Webitel's CC layout; otherwise none); `none` binds nothing on the CC exchange.
    """
    preset = PRESETS.get(format_fields.strip().lower())
    events = Layout.parse(preset[0] if preset is not None else format_fields)
    cc_text = cc_format_fields.strip()
    if not cc_text:
        cc_default = preset[1] if preset is not None else None
        return events, Layout.parse(cc_default) if cc_default is not None else None
    if cc_text.lower() == NO_LAYOUT:
        return events, None
    cc_preset = PRESETS.get(cc_text.lower())
    if cc_preset is not None:
        # A preset names its CC layout, or (the stock preset has none) its one layout.
        return events, Layout.parse(cc_preset[1] or cc_preset[0])
    return events, Layout.parse(cc_text)


def bindings_for(
    event_key: str,
    layout: Layout = STOCK_LAYOUT,
    cc_layout: Layout | None = None,
    events_exchange: str = "TAP.Events",
    cc_exchange: str = "TAP.CC-Events",
) -> list[tuple[str, str]]:
    """(exchange, binding key) pairs that route every event with this hook event key to our queue.

    The CC exchange (Webitel's callcenter profile) carries CUSTOM events only: it is bound for
    `CUSTOM->subclass` keys, and only when it has a layout.
    """
    name, _, subclass = event_key.partition("->")
    pairs = [(events_exchange, key) for key in layout.bindings(name, subclass or None)]
    if cc_layout is not None and name == _CUSTOM and subclass:
        # A CUSTOM subclass may come from the callcenter profile or from an engine publishing on TAP.Events
        # (Webitel's dialer): bind both so neither producer is missed.
        pairs += [(cc_exchange, key) for key in cc_layout.bindings(name, subclass)]
    return pairs
