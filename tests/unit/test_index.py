"""The in-memory hook index: incremental changes always equal a full rebuild, and listeners hear key changes."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from switchhook.services.index import HookIndex
from switchhook.store.base import HookRow

IDS = [f"{n:024x}" for n in range(6)]


def row(hook_id: str, domain: str, event: str, enable: bool) -> HookRow:
    doc = {"event": event, "enable": enable, "action": {"type": "web", "method": "POST", "url": "http://h/x"}}
    return HookRow(hook_id, domain, doc)


changes = st.lists(
    st.one_of(
        st.tuples(
            st.just("put"),
            st.sampled_from(IDS),
            st.sampled_from(["a", "b"]),
            st.sampled_from(["E1", "E2", "E3"]),
            st.booleans(),
        ),
        st.tuples(st.just("remove"), st.sampled_from(IDS)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(changes)
def test_incremental_changes_match_a_full_rebuild(steps: list[tuple[object, ...]]) -> None:
    index, heard = HookIndex(), []
    index.on_change(lambda: heard.append(index.event_keys()))
    rows: dict[str, HookRow] = {}
    for step in steps:
        if step[0] == "put":
            _, hook_id, domain, event, enable = step
            rows[str(hook_id)] = row(str(hook_id), str(domain), str(event), bool(enable))
            index.put(rows[str(hook_id)])
        else:
            rows.pop(str(step[1]), None)
            index.remove(str(step[1]))
    fresh = HookIndex()
    fresh.replace_all(rows.values())
    for domain in ("a", "b"):
        for event in ("E1", "E2", "E3"):
            assert {h.id for h in index.find(domain, event)} == {h.id for h in fresh.find(domain, event)}
    assert index.event_keys() == fresh.event_keys()
    assert len(index) == len(fresh)
    if heard:
        assert heard[-1] == index.event_keys()  # the last notification carried the final key set
    assert all(a != b for a, b in itertools.pairwise(heard))  # notified only on real changes
