"""The data of calls without a server (issue 14, items 1 and 2): the call id and event order key of an event, the
index and the sources following every key of a multi-key hook, X-Call-Id in the request, the per-key hook cap."""

from __future__ import annotations

from switchhook.core.hooks import Hook
from switchhook.core.render import build_request
from switchhook.ingest.esl import subscription_command
from switchhook.services.events import call_of, order_of
from switchhook.services.index import HookIndex
from switchhook.store.base import HookRow, Store
from tests.store.test_contract import NOW, A, B, hook_doc, hook_id, store

__all__ = ["store"]  # the contract fixture: both backends

KEYS = ["CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"]


def test_the_call_id_is_the_first_non_empty_call_header() -> None:
    assert call_of({"Channel-Call-UUID": "c", "variable_call_uuid": "v", "Unique-ID": "u"}) == "c"
    assert call_of({"Channel-Call-UUID": "", "variable_call_uuid": "v", "Unique-ID": "u"}) == "v"
    assert call_of({"Unique-ID": "u"}) == "u"
    assert call_of({"Event-Name": "HEARTBEAT"}) is None
    assert call_of({"Unique-ID": 5, "X-Call": "x"}, ("Unique-ID", "X-Call")) == "x"  # strings only; own headers


def test_the_event_order_key_is_timestamp_then_sequence() -> None:
    event = {"Event-Date-Timestamp": "1700000000123456", "Event-Sequence": "42"}
    assert order_of(event) == (1_700_000_000_123_456, 42)
    assert order_of({"Event-Date-Timestamp": "soon", "Event-Sequence": "-1"}) == (None, None)
    assert order_of({"Event-Sequence": 7}) == (None, 7)
    assert order_of({"Event-Sequence": "9" * 19}) == (None, None)  # beyond a BIGINT
    assert order_of({}) == (None, None)


def test_the_index_puts_a_multi_key_hook_under_each_key_and_the_sources_follow() -> None:
    index = HookIndex()
    first, second = hook_id(), hook_id()
    index.put(HookRow(first, A, hook_doc(KEYS)))  # type: ignore[arg-type]
    index.put(HookRow(second, A, hook_doc("CHANNEL_ANSWER")))
    assert [h.id for h in index.find(A, "CHANNEL_CREATE")] == [first]
    assert [h.id for h in index.find(A, "CHANNEL_ANSWER")] == [first, second]
    assert index.find(B, "CHANNEL_ANSWER") == ()
    assert index.event_keys() == frozenset(KEYS)
    assert set(subscription_command(index.event_keys()).split()[2:]) == set(KEYS)  # ESL follows every key
    index.put(HookRow(first, A, hook_doc(["CHANNEL_ANSWER"])))  # replaced: off the keys it left
    assert index.find(A, "CHANNEL_CREATE") == () and index.event_keys() == frozenset({"CHANNEL_ANSWER"})
    index.remove(first)
    assert [h.id for h in index.find(A, "CHANNEL_ANSWER")] == [second]


def test_x_call_id_is_switchhooks_own_header() -> None:
    hook = Hook.compile(hook_id(), A, hook_doc(headers={"x-call-id": "forged", "X-Other": "kept"}))

    def headers(call_id: str | None) -> dict[str, str]:
        return build_request(
            method="POST",
            url="https://x.test/h",
            event_key="CHANNEL_CREATE",
            message_id="m",
            event={"Event-Name": "CHANNEL_CREATE"},
            auth_values={},
            header_templates=hook.doc["headers"],
            fields=[],
            renames={},
            custom_body=False,
            raw_body=None,
            call_id=call_id,
        ).headers

    with_call = headers("call-1\r\nInjected: yes")
    assert with_call["X-Call-Id"] == "call-1  Injected: yes" and with_call["X-Other"] == "kept"
    assert "x-call-id" not in with_call
    assert not any(k.lower() == "x-call-id" for k in headers(None))


async def test_the_hook_cap_per_event_key_counts_a_multi_key_hook_on_each_key(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.insert_hook(HookRow(hook_id(), A, hook_doc(KEYS)), NOW)  # type: ignore[arg-type]
        await tx.insert_hook(HookRow(hook_id(), A, hook_doc("CHANNEL_ANSWER")), NOW)
        await tx.insert_hook(HookRow(hook_id(), A, hook_doc('["CHANNEL_ANSWER"]')), NOW)  # a key that looks like JSON
        await tx.insert_hook(HookRow(hook_id(), B, hook_doc(["CHANNEL_ANSWER"])), NOW)  # type: ignore[arg-type]
    async with store.transaction() as tx:
        count, on_keys = await tx.count_hooks(A, ["CHANNEL_ANSWER", "CHANNEL_CREATE", "CHANNEL_PARK"])
        assert count == 3
        assert on_keys == {"CHANNEL_ANSWER": 2, "CHANNEL_CREATE": 1, "CHANNEL_PARK": 0}
        _, literal = await tx.count_hooks(A, ['["CHANNEL_ANSWER"]'])
        assert literal == {'["CHANNEL_ANSWER"]': 1}
