"""Event and delivery ids: stable where a redelivery must be recognised, unique otherwise, ordered by time."""

from __future__ import annotations

import json
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from switchhook.core.ids import DEDUPED, TIME_DIGITS, delivery_id, event_id, time_part

NOW = 1_764_370_000.25
HOOK = "5f1e3c2a9b8d7e6f5a4b3c2d"
FS_TIME = "1742986241847058"


def fs_event(timestamp: str | None = FS_TIME, sequence: str = "685") -> dict[str, str]:
    event = {"Event-Name": "CHANNEL_CREATE", "Core-UUID": "917c114b", "Event-Sequence": sequence}
    if timestamp is not None:
        event["Event-Date-Timestamp"] = timestamp
    return event


def test_a_freeswitch_event_has_the_same_id_however_often_it_arrives() -> None:
    event = fs_event()
    first = event_id(event, "d", '{"a":1}', "http", NOW)
    assert first == event_id(event, "d", '{"a":1}', "amqp", NOW + 3600)  # the clock does not enter
    assert first.startswith(DEDUPED)
    assert event_id(event, "other", '{"a":1}', "http", NOW) != first
    assert event_id(fs_event(sequence="686"), "d", '{"a":1}', "http", NOW) != first
    assert event_id({**event, "Core-UUID": "another-run"}, "d", '{"a":1}', "http", NOW) != first


def test_one_freeswitch_event_over_esl_and_amqp_is_one_id_whatever_the_header_order() -> None:
    # The Event Socket and mod_amqp serialize the same event separately: same Core-UUID and Event-Sequence,
    # headers in another order, so another payload (freeswitch-1.10.12 captures, CUSTOM callcenter::info).
    over_amqp = {**fs_event(sequence="542"), "Event-Subclass": "callcenter::info", "CC-Queue": "q1@d"}
    over_esl = dict(reversed(over_amqp.items()))
    amqp_payload, esl_payload = json.dumps(over_amqp), json.dumps(over_esl)
    assert amqp_payload != esl_payload
    assert event_id(over_amqp, "d", amqp_payload, "amqp", NOW) == event_id(over_esl, "d", esl_payload, "esl", NOW)


def test_without_both_freeswitch_headers_the_content_decides() -> None:
    for event in ({"Event-Name": "X", "Core-UUID": "917c114b"}, {"Event-Name": "X", "Event-Sequence": "5"}):
        assert event_id(event, "d", '{"a":1}', "amqp", NOW) == event_id(event, "d", '{"a":1}', "esl", NOW)
        assert event_id(event, "d", '{"a":1}', "amqp", NOW) != event_id(event, "d", '{"a":2}', "amqp", NOW)
    empty = {"Event-Name": "X", "Core-UUID": "", "Event-Sequence": "5"}
    assert event_id(empty, "d", '{"a":1}', "amqp", NOW) != event_id(empty, "d", '{"a":2}', "amqp", NOW)


def test_a_deduplicated_id_leads_with_the_events_own_timestamp() -> None:
    assert time_part(event_id(fs_event(), "d", "{}", "esl", NOW)) == f"{int(FS_TIME):014x}"


def test_an_event_from_a_broker_without_freeswitch_headers_is_still_deduplicated() -> None:
    one = event_id({"Event-Name": "X"}, "d", "{}", "amqp", NOW)
    assert one == event_id({"Event-Name": "X"}, "d", "{}", "amqp", NOW + 1)
    assert time_part(one) == "0" * TIME_DIGITS  # no timestamp: stable all the same


def test_posted_events_without_freeswitch_headers_get_fresh_ids_in_time_order() -> None:
    made = [event_id({"Event-Name": "X"}, "d", "{}", "http", NOW + n / 1000) for n in range(2_000)]
    assert len(set(made)) == len(made)
    assert made == sorted(made)
    assert not made[0].startswith(DEDUPED)


def test_posted_events_in_the_same_microsecond_are_still_distinct() -> None:
    made = {event_id({}, "d", "{}", "http", NOW) for _ in range(70_000)}  # past one 65,536-id block
    assert len(made) == 70_000


def test_a_delivery_id_is_stable_per_event_and_hook_and_ordered_as_its_event() -> None:
    early = event_id(fs_event("1742986241000000"), "d", "{}", "esl", NOW)
    late = event_id(fs_event("1742986242000000"), "d", "{}", "esl", NOW)
    assert delivery_id(early, HOOK) == delivery_id(early, HOOK)
    assert delivery_id(early, HOOK) != delivery_id(early, "0" * 24)
    assert delivery_id(early, "f" * 24) < delivery_id(late, "0" * 24)
    made = uuid.UUID(delivery_id(late, HOOK))  # a UUID's shape: receivers store it in uuid columns
    assert str(made) == delivery_id(late, HOOK)
    assert (made.version, made.variant) == (7, uuid.RFC_4122)
    assert made.int >> 80 == int(time_part(late), 16) // 1000  # version 7's millisecond time


@given(st.one_of(st.none(), st.text(max_size=24), st.integers().map(str)))
@settings(max_examples=300, deadline=None)
def test_any_timestamp_header_gives_a_well_formed_id(timestamp: str | None) -> None:
    made = event_id(fs_event(timestamp), "d", "{}", "esl", NOW)
    part = time_part(made)
    assert len(part) == TIME_DIGITS
    assert made == DEDUPED + part + made[len(DEDUPED) + TIME_DIGITS :]
    assert all(c in "0123456789abcdef" for c in made[len(DEDUPED) :])


@given(st.lists(st.integers(min_value=0, max_value=16**TIME_DIGITS - 1), min_size=2, max_size=20))
@settings(max_examples=200, deadline=None)
def test_ids_sort_as_their_timestamps_do(stamps: list[int]) -> None:
    made = [(stamp, event_id(fs_event(str(stamp)), "d", str(stamp), "esl", NOW)) for stamp in stamps]
    by_id = [stamp for stamp, _ in sorted(made, key=lambda pair: pair[1])]
    assert by_id == sorted(stamps)


def test_an_id_of_another_shape_has_no_time_part() -> None:
    assert time_part("evt_" + "z" * 40) == "0" * TIME_DIGITS
    assert time_part("short") == "0" * TIME_DIGITS
