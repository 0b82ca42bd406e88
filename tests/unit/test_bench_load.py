"""The bench's events look like a switch's: every event of every send has its own `Event-Sequence`."""

from __future__ import annotations

import orjson
from bench.load import events_body, make_event, stamp


def test_a_template_sent_twice_numbers_every_event_afresh() -> None:
    # switchhook identifies a FreeSWITCH event by (domain, Core-UUID, Event-Sequence): a repeated number would be
    # stored once, as a duplicate, and the bench would measure de-duplication instead of delivery.
    template = events_body([make_event("bench.example") for _ in range(3)])
    sent = [orjson.loads(stamp(template)) for _ in range(2)]
    sequences = [event["Event-Sequence"] for body in sent for event in body]
    assert len(set(sequences)) == 6 and all(s.isdigit() for s in sequences)
    assert len({event["Core-UUID"] for body in sent for event in body}) == 1
    assert all(event["Event-Date-Timestamp"].isdigit() for body in sent for event in body)
