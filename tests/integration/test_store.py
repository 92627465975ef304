"""The worklist store on a real redis-server: atomic updates, indexes, dedup."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from pydicom.dataset import Dataset

from broker.errors import StoreError
from broker.store.connection import EmbeddedRedis
from broker.store.worklist import WorklistStore
from broker.worklist.model import (
    CandidateCriteria,
    DedupKey,
    DedupRecord,
    OrderAction,
    OrderChange,
)
from broker.worklist.ordering import MessageTime, message_time
from tests.conftest import KEYS


def entry(
    pid: str, acc: str, aets: list[str], modality: str, date: str, name: str = "DOE^JOHN"
) -> Dataset:
    ds = Dataset()
    ds.PatientName = name
    ds.PatientID = pid
    ds.AccessionNumber = acc
    sps = Dataset()
    sps.ScheduledStationAETitle = aets if len(aets) != 1 else aets[0]
    sps.Modality = modality
    sps.ScheduledProcedureStepStartDate = date
    sps.ScheduledProcedureStepID = f"SPS-{acc}"
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def ids_of(store: WorklistStore, **criteria: Any) -> set[str]:
    return {ds.AccessionNumber for ds in store.candidates(CandidateCriteria(**criteria))}


def test_schedule_indexes_every_key(store: WorklistStore) -> None:
    store.apply(
        [
            OrderChange(
                "O1", OrderAction.SCHEDULE, (entry("P1", "A1", ["CT1", "CT2"], "CT", "20261125"),)
            )
        ],
        None,
    )
    store.apply(
        [OrderChange("O2", OrderAction.SCHEDULE, (entry("P2", "A2", ["MR1"], "MR", "20261126"),))],
        None,
    )
    assert store.count() == 2
    assert ids_of(store) == {"A1", "A2"}
    assert ids_of(store, station_aet="CT2") == {"A1"}
    assert ids_of(store, modality="MR") == {"A2"}
    assert ids_of(store, patient_id="P2") == {"A2"}
    assert ids_of(store, accession_number="A1") == {"A1"}
    assert ids_of(store, date_from="20261126") == {"A2"}
    assert ids_of(store, date_to="20261125") == {"A1"}
    assert ids_of(store, station_aet="CT1", date_from="20261126", date_to="20261126") == set()
    assert ids_of(store, station_aet="CT1", date_from="20261125", date_to="20261125") == {"A1"}


def test_entries_round_trip_unicode_names(store: WorklistStore) -> None:
    store.apply(
        [
            OrderChange(
                "O1",
                OrderAction.SCHEDULE,
                (entry("P1", "A1", ["CT1"], "CT", "20261125", "Müller^Zoë"),),
            )
        ],
        None,
    )
    (ds,) = store.candidates(CandidateCriteria())
    assert str(ds.PatientName) == "Müller^Zoë"
    assert ds.ScheduledProcedureStepSequence[0].Modality == "CT"


def test_replacing_an_order_drops_old_index_memberships(store: WorklistStore) -> None:
    store.apply(
        [
            OrderChange(
                "O1",
                OrderAction.SCHEDULE,
                (
                    entry("P1", "A1", ["CT1"], "CT", "20261125"),
                    entry("P1", "A1B", ["CT1"], "CT", "20261125"),
                ),
            )
        ],
        None,
    )
    store.apply(
        [OrderChange("O1", OrderAction.SCHEDULE, (entry("P1", "A1", ["MR1"], "MR", "20261127"),))],
        None,
    )
    assert store.count() == 1
    assert ids_of(store, station_aet="CT1") == set()
    assert ids_of(store, modality="CT") == set()
    assert ids_of(store, station_aet="MR1") == {"A1"}
    assert ids_of(store, date_from="20261125", date_to="20261125") == set()


def test_cancel_removes_every_trace(store: WorklistStore, redis_client: redis.Redis) -> None:
    store.apply(
        [OrderChange("O1", OrderAction.SCHEDULE, (entry("P1", "A1", ["CT1"], "CT", "20261125"),))],
        None,
    )
    store.apply(
        [OrderChange("O2", OrderAction.SCHEDULE, (entry("P2", "A2", ["CT1"], "CT", "20261125"),))],
        None,
    )
    outcome = store.apply([OrderChange("O1", OrderAction.CANCEL)], None)
    assert (outcome.created, outcome.removed) == (0, 1)
    assert ids_of(store) == {"A2"}
    assert store.order_entry_ids("O1") == []
    keys = {k.decode() for k in redis_client.scan_iter(match="mwl:*")}
    assert not any("P1" in k or "A1" in k for k in keys)


def test_dedup_record_makes_second_apply_a_no_op(store: WorklistStore) -> None:
    key = DedupKey("RIS", "HOSP", "MSG1")
    record = DedupRecord("abc", b"MSH|ack\r")
    first = store.apply(
        [OrderChange("O1", OrderAction.SCHEDULE, (entry("P1", "A1", ["CT1"], "CT", "20261125"),))],
        (key, record),
    )
    assert first.duplicate is None and first.created == 1
    assert store.dedup_lookup(key) == record
    second = store.apply([OrderChange("O1", OrderAction.CANCEL)], (key, DedupRecord("other", b"x")))
    assert second.duplicate == record
    assert store.count() == 1
    assert store.dedup_lookup(DedupKey("RIS", "HOSP", "MSG2")) is None


def test_dedup_record_expires_after_window(redis_client: redis.Redis) -> None:
    store = WorklistStore(redis_client, keys=KEYS, dedup_ttl_seconds=3600)
    key = DedupKey("RIS", "HOSP", "M")
    store.apply([], (key, DedupRecord("d", b"a")))
    ttl = redis_client.ttl(store.keys.dedup(key))
    assert 0 < ttl <= 3600


def test_key_parts_with_separators_do_not_collide(store: WorklistStore) -> None:
    a = store.keys.dedup(DedupKey("A|B", "C", "D"))
    b = store.keys.dedup(DedupKey("A", "B|C", "D"))
    assert a != b


def test_unreachable_redis_raises_store_error(redis_server: EmbeddedRedis) -> None:
    client = redis.Redis(unix_socket_path=str(redis_server.socket_path) + ".none", socket_timeout=1)
    store = WorklistStore(client, keys=KEYS)
    with pytest.raises(StoreError):
        store.apply([OrderChange("O1", OrderAction.CANCEL)], None)
    with pytest.raises(StoreError):
        list(store.candidates(CandidateCriteria()))
    with pytest.raises(StoreError):
        store.dedup_lookup(DedupKey("a", "b", "c"))


def status_of(store: WorklistStore, acc: str) -> str:
    (ds,) = store.candidates(CandidateCriteria(accession_number=acc))
    return str(ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus)


def schedule(order: str, acc: str, status: str = "SCHEDULED") -> OrderChange:
    return OrderChange(
        order, OrderAction.SCHEDULE, (entry("P1", acc, ["CT1"], "CT", "20261125"),), status
    )


def set_status(order: str, status: str) -> OrderChange:
    return OrderChange(order, OrderAction.SET_STATUS, status=status)


def test_status_change_touches_only_that_orders_entries(store: WorklistStore) -> None:
    store.apply([schedule("O1", "A1"), schedule("O2", "A2")], None)
    outcome = store.apply([set_status("O1", "STARTED")], None)
    assert outcome.created == 1
    assert (status_of(store, "A1"), status_of(store, "A2")) == ("STARTED", "SCHEDULED")


def test_cancel_before_its_new_order_leaves_a_tombstone(store: WorklistStore) -> None:
    early_cancel = store.apply([set_status("O1", "CANCELED")], None)
    assert (early_cancel.created, early_cancel.skipped) == (0, 0)
    late_new = store.apply([schedule("O1", "A1")], None)
    assert (late_new.created, late_new.skipped) == (0, 1)
    assert store.count() == 0


def test_finished_order_is_not_scheduled_again(store: WorklistStore) -> None:
    store.apply([schedule("O1", "A1")], None)
    store.apply([set_status("O1", "DISCONTINUED")], None)
    assert store.apply([schedule("O1", "A1")], None).skipped == 1
    assert status_of(store, "A1") == "DISCONTINUED"
    completed = store.apply([schedule("O1", "A1", "COMPLETED")], None)
    assert completed.skipped == 0
    assert status_of(store, "A1") == "COMPLETED"


def test_hold_removes_and_release_schedules_again(store: WorklistStore) -> None:
    store.apply([schedule("O1", "A1")], None)
    store.apply([OrderChange("O1", OrderAction.CANCEL)], None)
    assert store.count() == 0
    assert store.apply([schedule("O1", "A1")], None).created == 1
    assert status_of(store, "A1") == "SCHEDULED"


# -- message order: an older message never overwrites a newer state (MSH-7) --------


def sent(msh7: str) -> MessageTime:
    moment = message_time(msh7)
    assert moment is not None
    return moment


def test_older_change_after_a_newer_one_changes_nothing(store: WorklistStore) -> None:
    store.apply([schedule("O1", "A1")], None, sent=sent("20260101080000"))
    store.apply([schedule("O1", "A2")], None, sent=sent("20260101100000"))
    late = store.apply([schedule("O1", "A3")], None, sent=sent("20260101090000"))
    assert (late.created, late.removed, late.skipped, late.stale) == (0, 0, 1, 1)
    assert ids_of(store) == {"A2"}


def test_newer_and_equal_changes_apply(store: WorklistStore) -> None:
    store.apply([schedule("O1", "A1")], None, sent=sent("20260101080000+0100"))
    newer = store.apply([schedule("O1", "A2")], None, sent=sent("20260101080001+0100"))
    assert (newer.created, newer.stale) == (1, 0)
    equal = store.apply([schedule("O1", "A3")], None, sent=sent("20260101070001+0000"))
    assert (equal.created, equal.stale) == (1, 0)  # the same instant: arrival order
    assert ids_of(store) == {"A3"}


def test_time_zones_are_compared_in_utc(store: WorklistStore) -> None:
    store.apply([schedule("O1", "A1")], None, sent=sent("20260101120000+0100"))  # 11:00 UTC
    older = store.apply([schedule("O1", "A2")], None, sent=sent("20260101060000-0430"))  # 10:30
    assert older.stale == 1
    newer = store.apply([schedule("O1", "A3")], None, sent=sent("20260101070000-0430"))  # 11:30
    assert newer.stale == 0
    assert ids_of(store) == {"A3"}


def test_a_coarser_timestamp_is_older_only_when_it_surely_is(store: WorklistStore) -> None:
    store.apply([schedule("O1", "A1")], None, sent=sent("20260101120000+0000"))
    assert store.apply([schedule("O1", "A2")], None, sent=sent("20260101+0000")).stale == 0
    assert ids_of(store) == {"A2"}  # the whole day overlaps 12:00: applied
    assert store.apply([schedule("O1", "A3")], None, sent=sent("20251231+0000")).stale == 1
    # the day applied last did not lower the mark: 11:00 is still older than 12:00
    assert store.apply([schedule("O1", "A4")], None, sent=sent("20260101110000+0000")).stale == 1
    assert ids_of(store) == {"A2"}


def test_missing_msh7_applies_and_records_nothing(store: WorklistStore) -> None:
    store.apply([schedule("O1", "A1")], None, sent=sent("20260101100000"))
    undated = store.apply([schedule("O1", "A2")], None, sent=None)
    assert (undated.created, undated.stale) == (1, 0)
    assert store.apply([schedule("O1", "A3")], None, sent=sent("20260101090000")).stale == 1
    assert ids_of(store) == {"A2"}


def test_cancel_older_than_the_order_it_follows_does_not_cancel(store: WorklistStore) -> None:
    store.apply([schedule("O1", "A1")], None, sent=sent("20260101100000"))
    cancel = store.apply([set_status("O1", "CANCELED")], None, sent=sent("20260101095959"))
    assert (cancel.skipped, cancel.stale) == (1, 1)
    assert status_of(store, "A1") == "SCHEDULED"
    assert store.apply([set_status("O1", "CANCELED")], None, sent=sent("20260101100001")).stale == 0
    assert status_of(store, "A1") == "CANCELED"


def test_the_tombstone_still_holds_for_a_newer_new_order(store: WorklistStore) -> None:
    store.apply([set_status("O1", "CANCELED")], None, sent=sent("20260101100000"))
    late_new = store.apply([schedule("O1", "A1")], None, sent=sent("20260101110000"))
    assert (late_new.created, late_new.skipped, late_new.stale) == (0, 1, 0)
    assert store.count() == 0


def test_the_mark_is_per_order(store: WorklistStore) -> None:
    store.apply([schedule("O1", "A1")], None, sent=sent("20260101100000"))
    other = store.apply([schedule("O2", "A2")], None, sent=sent("20260101090000"))
    assert (other.created, other.stale) == (1, 0)
