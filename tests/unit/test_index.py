"""The in-memory hook index: incremental changes always equal a full rebuild, and listeners hear key changes."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchhook.core.errors import ValidationFailed
from switchhook.services.index import HookIndex
from switchhook.store.base import HookRow

IDS = [f"{n:024x}" for n in range(6)]


def row(hook_id: str, domain: str, event: str, enable: bool, regexes: int = 0) -> HookRow:
    doc: dict[str, Any] = {
        "event": event,
        "enable": enable,
        "action": {"type": "web", "method": "POST", "url": "http://h/x"},
    }
    if regexes:
        doc["filter"] = {f"k{n}": {"operation": "reg", "value": "^x"} for n in range(regexes)}
    return HookRow(hook_id, domain, doc)


changes = st.lists(
    st.one_of(
        st.tuples(
            st.just("put"),
            st.sampled_from(IDS),
            st.sampled_from(["a", "b"]),
            st.sampled_from(["E1", "E2", "E3"]),
            st.booleans(),
            st.integers(0, 3),
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
            _, hook_id, domain, event, enable, regexes = step
            assert isinstance(regexes, int)
            rows[str(hook_id)] = row(str(hook_id), str(domain), str(event), bool(enable), regexes)
            index.put(rows[str(hook_id)])
        else:
            rows.pop(str(step[1]), None)
            index.remove(str(step[1]))
    fresh = HookIndex()
    fresh.replace_all(rows.values())
    for domain in ("a", "b"):
        assert index.regexes(domain) == fresh.regexes(domain)  # the per-domain reg count, kept incrementally
        for event in ("E1", "E2", "E3"):
            assert {h.id for h in index.find(domain, event)} == {h.id for h in fresh.find(domain, event)}
    assert index.event_keys() == fresh.event_keys()
    assert len(index) == len(fresh)
    if heard:
        assert heard[-1] == index.event_keys()  # the last notification carried the final key set
    assert all(a != b for a, b in itertools.pairwise(heard))  # notified only on real changes


def test_a_domains_reg_conditions_are_capped_counting_what_a_replacement_takes_away() -> None:
    index = HookIndex(max_regexes_per_domain=5)
    index.put(row(IDS[0], "a", "E1", True, regexes=3))
    index.put(row(IDS[1], "a", "E2", False, regexes=1))  # a disabled hook's filters count: enabling it is a PUT
    index.put(row(IDS[2], "b", "E1", True, regexes=3))
    assert (index.regexes("a"), index.regexes("b")) == (4, 3)
    index.check_regex_room("a", index.compile(row(IDS[3], "a", "E1", True, regexes=1))[0])
    with pytest.raises(ValidationFailed, match="have 4 conditions with operation reg besides this hook's 2, more"):
        index.check_regex_room("a", index.compile(row(IDS[3], "a", "E1", True, regexes=2))[0])
    index.check_regex_room("a", index.compile(row(IDS[0], "a", "E1", True, regexes=4))[0], replacing=IDS[0])
    index.remove(IDS[0])
    assert index.regexes("a") == 1
    index.remove_domain("b")
    assert index.regexes("b") == 0
