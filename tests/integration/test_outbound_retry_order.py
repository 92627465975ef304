"""A retried event goes back to its place in the queue by event id, so that an event parked
at the bound ("queue full") never goes out before an older waiting event of its order:
retry of one event and ``retry --all``, on a real redis-server."""

from __future__ import annotations

from broker.store.entry_edits import EntryEdits
from broker.store.outbound import OutboundQueue, OutboundRoutes
from broker.store.worklist import WorklistStore
from tests.integration.outbound_helpers import put_orders, queue

_TWO = OutboundRoutes({"RIS": "ris"}, {"ris": 2})  # two events may wait, the next is parked


def _set(store: WorklistStore, entry_id: str, status: str) -> None:
    e = EntryEdits(store.client, store.keys, store.scripts, outbound=_TWO)
    e.set_status(e.read(entry_id), status)


def _statuses(q: OutboundQueue) -> list[tuple[str, str]]:
    """(order, status) of the waiting events, in queue order."""
    return [(e.order, e.status) for i in q.queued() if (e := q.event(i))]


def _full_queue(store: WorklistStore) -> tuple[OutboundQueue, list[str]]:
    """O-0 STARTED and O-1 STARTED wait; O-0 COMPLETED and O-1 COMPLETED are parked
    "queue full"; the ids of the parked ones."""
    first, second = put_orders(store, 2)
    _set(store, first, "STARTED")
    _set(store, second, "STARTED")
    _set(store, first, "COMPLETED")
    _set(store, second, "COMPLETED")
    q = queue(store)
    parked = [e for i in q.parked() if (e := q.event(i))]
    assert [(e.order, e.status, e.reason[:10]) for e in parked] == [
        ("O-0", "COMPLETED", "queue full"),
        ("O-1", "COMPLETED", "queue full"),
    ]
    return q, [e.id for e in parked]


def test_retry_puts_a_queue_full_event_after_the_older_waiting_event_of_its_order(
    store: WorklistStore,
) -> None:
    q, parked = _full_queue(store)
    assert q.retry(parked[1]) == ("ok", [parked[1]])
    assert _statuses(q) == [("O-0", "STARTED"), ("O-1", "STARTED"), ("O-1", "COMPLETED")]
    assert q.retry(parked[0]) == ("ok", [parked[0]])
    assert _statuses(q) == [
        ("O-0", "STARTED"),
        ("O-1", "STARTED"),
        ("O-0", "COMPLETED"),
        ("O-1", "COMPLETED"),
    ]
    assert [int(i) for i in q.queued()] == sorted(int(i) for i in q.queued())


def test_retry_all_merges_by_event_id(store: WorklistStore) -> None:
    q, _ = _full_queue(store)
    assert q.retry_all() == 2
    assert _statuses(q) == [
        ("O-0", "STARTED"),
        ("O-1", "STARTED"),
        ("O-0", "COMPLETED"),
        ("O-1", "COMPLETED"),
    ]
    assert q.parked() == []
