"""Status events for the RIS: queued with the status change, delivered over MLLP to a real
receiver in its own process, in order per order, retried, parked on AE, one sender at a
time (the lease). Real redis-server, real sockets on 127.0.0.1."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import redis
from pydicom.dataset import Dataset

from broker.mllp.client import summarize_ack
from broker.services.application import Services
from broker.services.outbound import OutboundService
from broker.services.outbound_sender import SenderThreads
from broker.settings import load_settings
from broker.store.mpps import MppsStore
from broker.store.worklist import WorklistStore
from broker.worklist.mpps import StepRef
from tests.broker_runner import MAPPINGS
from tests.conftest import TEST_SECRET
from tests.integration.hl7_seed import order
from tests.integration.outbound_helpers import (
    ROUTES,
    Receiver,
    put_orders,
    queue,
    sender,
    set_status,
)
from tests.waiting import wait_for


def _delivered(receiver: Receiver, store: WorklistStore, count: int) -> bool:
    return queue(store).head() is None and len({r["control"] for r in receiver.records()}) >= count


def test_a_status_change_queues_its_event_atomically_and_without_origin_nothing(
    store: WorklistStore,
) -> None:
    ids = put_orders(store, 2)
    ids += put_orders(store, 1, origin="", first=2)  # an order nobody routed: no event
    for entry_id in ids:
        set_status(store, entry_id, "STARTED")
    q = queue(store)
    events = [q.event(i) for i in q.queued()]
    assert [(e.status, e.entry, e.source) for e in events if e] == [
        ("STARTED", ids[0], "edit"),
        ("STARTED", ids[1], "edit"),
    ]
    assert len({e.control for e in events if e}) == 2
    assert "DOE" not in repr(events)  # the event's repr holds no patient data


def test_mpps_queues_in_progress_then_completed(store: WorklistStore) -> None:
    (entry_id,) = put_orders(store, 1)
    mpps = MppsStore(store, outbound=ROUTES)
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    step = StepRef("1.2.826.0.1.3680043.10.1234.0", "ACC-0", "RP-0", "SPS-0")
    mpps.create("1.2.3.4", ds, [step], patient_id="P-0", aet="CT1")
    done = Dataset()
    done.PerformedProcedureStepStatus = "COMPLETED"
    mpps.update("1.2.3.4", done, aet="CT1")
    q = queue(store)
    assert [(e.status, e.source) for i in q.queued() if (e := q.event(i))] == [
        ("STARTED", "mpps"),
        ("COMPLETED", "mpps"),
    ]
    assert entry_id


def test_receiver_killed_during_a_burst_every_event_delivered_in_order(
    store: WorklistStore, tmp_path: Path
) -> None:
    receiver = Receiver(tmp_path / "got.jsonl")
    receiver.start()
    ids = put_orders(store, 20)
    threads = SenderThreads([sender(store, receiver.destination())])
    try:
        threads.start()
        for n, entry_id in enumerate(ids):
            set_status(store, entry_id, "STARTED")
            if n == 7:
                receiver.kill()
            if n == 13:
                receiver.start()
        for n, entry_id in enumerate(ids):
            set_status(store, entry_id, "COMPLETED")
            if n == 5:
                receiver.kill()
                receiver.start()
        wait_for(lambda: _delivered(receiver, store, 40), "every event delivered")
    finally:
        threads.stop(10)
        receiver.kill()
    records = receiver.records()
    first: dict[str, dict[str, object]] = {}
    for row in records:
        first.setdefault(str(row["control"]), row)
    assert len(first) == 40  # every event at least once; exactly once by MSH-10
    assert len(records) >= 40
    by_order: dict[str, list[object]] = defaultdict(list)
    for row in first.values():
        by_order[str(row["order"])].append(row["status"])
    assert dict(by_order) == {f"PL-{n}": ["IP", "CM"] for n in range(20)}


def test_an_ae_parks_the_message_with_its_err_and_retry_sends_it_again(
    store: WorklistStore, tmp_path: Path
) -> None:
    receiver = Receiver(tmp_path / "got.jsonl")
    receiver.start(answer="ae")
    (entry_id,) = put_orders(store, 1)
    set_status(store, entry_id, "STARTED")
    q = queue(store)
    s = sender(store, receiver.destination())
    wait_for(lambda: (s.step(), q.parked())[1] != [], "the AE'd event parked")
    set_status(store, entry_id, "COMPLETED")  # its order is held: parked behind it
    parked = [q.event(i) for i in q.parked()]
    assert [(e.status, e.state) for e in parked if e] == [
        ("STARTED", "parked"),
        ("COMPLETED", "parked"),
    ]
    first = parked[0]
    assert first is not None and "unknown order" in first.err and first.reason.startswith("AE")
    assert q.queued() == []
    held = store.client.hkeys(store.keys.outbound("ris", "held"))
    assert held == [store.keys.order_field("O-0").encode()]  # a pseudonym, not the order key
    receiver.kill()
    receiver.start(answer="aa")
    service = OutboundService({"ris": q}, {"ris": receiver.destination()})
    assert service.retry("ris", first.id, by="tester") == [e.id for e in parked if e]
    wait_for(lambda: (s.step(), q.head())[1] is None, "the retried events sent")
    s.close()
    receiver.kill()
    controls = [r["control"] for r in receiver.records()]
    assert controls[-2:] == [e.control for e in parked if e]  # the same MSH-10 again
    assert [r["status"] for r in receiver.records()][-2:] == ["IP", "CM"]


def test_two_senders_on_one_redis_never_send_at_once(store: WorklistStore, tmp_path: Path) -> None:
    receiver = Receiver(tmp_path / "got.jsonl")
    receiver.start()
    ids = put_orders(store, 15)
    destination = receiver.destination()
    threads = SenderThreads([sender(store, destination), sender(store, destination)])
    threads.start()
    try:
        for entry_id in ids:
            set_status(store, entry_id, "STARTED")
        wait_for(lambda: queue(store).head() is None and len(receiver.records()) >= 15, "sent")
    finally:
        threads.stop(10)
        receiver.kill()
    records = receiver.records()
    assert len({r["control"] for r in records}) == len(records) == 15  # none sent twice
    assert {r["open"] for r in records} == {1}  # one connection open at any time
    assert len({r["connection"] for r in records}) == 1  # only the lease holder connected


def test_a_lease_its_holder_left_behind_is_taken_over_once_it_expires(
    store: WorklistStore, tmp_path: Path
) -> None:
    receiver = Receiver(tmp_path / "got.jsonl")
    receiver.start()
    (entry_id,) = put_orders(store, 1)
    set_status(store, entry_id, "STARTED")
    assert queue(store).acquire("a process that died", 500)  # never renewed, never released
    s = sender(store, receiver.destination())
    try:
        assert s.step() > 0 and receiver.records() == []  # not while the lease is held
        wait_for(lambda: (s.step(), queue(store).head())[1] is None, "taken over and sent")
    finally:
        s.close()
        receiver.kill()
    assert [r["status"] for r in receiver.records()] == ["IP"]


def test_intake_records_the_sender_an_order_came_from(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    config = tmp_path / "broker.toml"
    config.write_text(
        '[hl7_senders.RIS]\naddresses = ["10.0.0.0/24"]\ndestination = "ris"\n'
        '[hl7_destinations.ris]\nhost = "127.0.0.1"\nport = 9\n'
    )
    environ = {"MWL_BROKER_REDIS_KEY_SECRET": TEST_SECRET.decode()}
    settings = load_settings(
        config_file=config, environ=environ, overrides={"mappings_dir": MAPPINGS}
    )
    services = Services(settings, redis_client)
    services.live_mappings.load()
    assert summarize_ack(services.intake.handle(order(1), "10.0.0.9:4000")).code == "AA"
    assert summarize_ack(services.intake.handle(order(2), "10.9.9.9:4000")).code == "AA"
    store = services.store
    ids = [
        i.decode() if isinstance(i, bytes) else i
        for i in redis_client.smembers(store.keys.all_entries())
    ]
    origins = {redis_client.hget(store.keys.entry(i), "origin") for i in ids}
    assert origins == {b"RIS", None}  # an address no table lists: no origin, no status sent
