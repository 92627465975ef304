"""The outbound queues in a backup: events queued for a receiver that is down (one
parked, with the later event of its order held behind it) backed up, restored onto a
fresh Redis under another key secret, then delivered by a sender there to a real
receiver: every event once, in order; the entries keep their origin, so a new status
change there is queued too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from broker.services.backup import BackupService
from broker.store.connection import EmbeddedRedis
from broker.store.keys import KeySchema
from broker.store.worklist import WorklistStore
from tests.integration.outbound_helpers import Receiver, put_orders, queue, sender, set_status


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[WorklistStore]:
    server = EmbeddedRedis(tmp_path / "fresh")
    server.start()
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    try:
        yield WorklistStore(client, keys=KeySchema("mwl", b"another-secret-" * 3))
    finally:
        client.close()
        server.stop()


def test_queued_and_parked_events_restored_are_delivered_once_in_order(
    store: WorklistStore, fresh: WorklistStore, tmp_path: Path
) -> None:
    ids = put_orders(store, 3)
    for status in ("STARTED", "COMPLETED"):
        for entry_id in ids:
            set_status(store, entry_id, status)
    old = queue(store)
    controls = {i: e.control for i in old.queued() if (e := old.event(i)) is not None}
    order_of = {i: e.order for i in old.queued() if (e := old.event(i)) is not None}
    first = old.queued()[0]
    assert old.acquire("t", 10_000) and old.park("t", first, "AE: rejected", "ERR") == 1
    old.release("t")
    receiver = Receiver(tmp_path / "got.jsonl")
    receiver.start()
    receiver.kill()  # the receiver is down: the queue waits
    down = sender(store, receiver.destination())
    assert down.step() > 0
    down.close()

    backup = tmp_path / "backup.jsonl"
    counts = BackupService(store.client, lambda: store).backup(backup).counts
    assert counts["outbound"] == 6 and counts["outbound-state"] == 1
    BackupService(fresh.client, lambda: fresh).restore(backup)

    new = queue(fresh)
    assert new.counts() == (4, 2) and new.queued() == old.queued()
    receiver.start()
    try:
        _deliver_all(fresh, receiver, first)
        got = [r["control"] for r in receiver.records()]
        entry_id = fresh.keys.entry_id("O-0", 1)
        assert fresh.client.hget(fresh.keys.entry(entry_id), "origin") == b"RIS"
        set_status(fresh, entry_id, "DISCONTINUED")  # routed by its restored origin
        (latest,) = new.queued()
        assert int(latest) > max(int(i) for i in controls)
        _deliver_all(fresh, receiver)
    finally:
        receiver.kill()
    assert sorted(got) == sorted(controls.values()) and len(set(got)) == 6
    by_order: dict[str, list[str]] = {}
    for event_id in sorted(controls, key=int):
        by_order.setdefault(order_of[event_id], []).append(controls[event_id])
    for sent in by_order.values():  # each order's events arrived in the order they happened
        assert [c for c in got if c in sent] == sent
    assert len(receiver.records()) == 7


def _deliver_all(store: WorklistStore, receiver: Receiver, parked: str | None = None) -> None:
    """Every waiting event sent; then ``parked`` retried and sent with its order's."""
    q, worker = queue(store), sender(store, receiver.destination())
    try:
        while q.head() is not None:
            assert worker.step() == 0.0
        if parked is not None:
            assert q.retry(parked)[0] == "ok"
            while q.head() is not None:
                assert worker.step() == 0.0
    finally:
        worker.close()
