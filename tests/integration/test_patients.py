"""Patients on a real redis-server: ADT updates, merges, arrivals, and later orders."""

from __future__ import annotations

import json

import pytest
import redis
from pydicom.dataset import Dataset

from broker.errors import MappingError
from broker.store.guards import Guard, GuardKind
from broker.store.keys import MAX_MERGED_IDS
from broker.store.patients import PatientStore
from broker.store.worklist import WorklistStore
from broker.worklist.model import (
    CandidateCriteria,
    DedupKey,
    DedupRecord,
    OrderAction,
    OrderChange,
    PatientAction,
    PatientChange,
    PatientResult,
)
from tests.conftest import keys_for


def entry(pid: str, acc: str, *, name: str = "ORDER^NAME", birth: str = "19500101") -> Dataset:
    ds = Dataset()
    ds.PatientID = pid
    ds.PatientName = name
    ds.PatientBirthDate = birth
    ds.AccessionNumber = acc
    sps = Dataset()
    sps.Modality = "CT"
    sps.ScheduledStationAETitle = "CT1"
    sps.ScheduledProcedureStepStartDate = "20261126"
    sps.ScheduledProcedureStepID = f"SPS-{acc}"
    sps.ScheduledProcedureStepStatus = "SCHEDULED"
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def order(patients: PatientStore, pid: str, acc: str, **kw: str) -> None:
    change = OrderChange(f"PLACER:{acc}", OrderAction.SCHEDULE, (entry(pid, acc, **kw),))
    assert not patients.apply_order([change], None).conflict


def attrs(pid: str, **values: str) -> Dataset:
    ds = Dataset()
    ds.PatientID = pid
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def adt(
    patients: PatientStore, action: PatientAction, *changes: PatientChange, msg: str = ""
) -> int:
    dedup = (DedupKey("HIS", "HOSP", msg), DedupRecord(msg, b"ack")) if msg else None
    outcome = patients.apply(PatientResult(action, changes, "adt", "v1"), dedup)
    assert outcome.duplicate is None
    return outcome.updated


def update(patients: PatientStore, pid: str, **values: str) -> int:
    return adt(patients, PatientAction.UPDATE, PatientChange(pid, attrs(pid, **values)))


def merge(patients: PatientStore, prior: str, surviving: str, **values: str) -> None:
    adt(patients, PatientAction.MERGE, PatientChange(surviving, attrs(surviving, **values), prior))


def by_acc(store: WorklistStore) -> dict[str, Dataset]:
    return {ds.AccessionNumber: ds for ds in store.candidates(CandidateCriteria())}


def accs(store: WorklistStore, pid: str) -> set[str]:
    return {ds.AccessionNumber for ds in store.candidates(CandidateCriteria(patient_id=pid))}


def state(store: WorklistStore) -> dict[str, dict[str, object]]:
    return {acc: ds.to_json_dict() for acc, ds in by_acc(store).items()}


def patient_store(client: redis.Redis, prefix: str) -> tuple[WorklistStore, PatientStore]:
    store = WorklistStore(client, keys=keys_for(prefix))
    return store, PatientStore(store)


def test_update_touches_every_entry_of_the_patient_and_only_those(store: WorklistStore) -> None:
    patients = PatientStore(store)
    for pid, acc in (("P1", "A1"), ("P1", "A2"), ("P2", "B1")):
        order(patients, pid, acc)
    assert update(patients, "P1", PatientName="NEW^NAME", PatientSex="F") == 2
    entries = by_acc(store)
    for acc in ("A1", "A2"):
        assert str(entries[acc].PatientName) == "NEW^NAME"
        assert entries[acc].PatientSex == "F"
        assert entries[acc].PatientBirthDate == "19500101"  # not carried: the order's stays
        assert entries[acc].AccessionNumber == acc
    assert str(entries["B1"].PatientName) == "ORDER^NAME"
    assert "PatientSex" not in entries["B1"]


def test_record_is_kept_and_merged_and_a_later_order_gets_it(store: WorklistStore) -> None:
    patients = PatientStore(store)
    update(patients, "P1", PatientName="ADT^NAME")
    update(patients, "P1", PatientBirthDate="19800102")  # a partial update keeps the name
    order(patients, "P1", "A1", name="ORDER^NAME", birth="19000101")
    ds = by_acc(store)["A1"]
    assert (str(ds.PatientName), ds.PatientBirthDate) == ("ADT^NAME", "19800102")
    raw = store.client.hget(store.keys.patient("P1"), "ds")
    assert raw is not None
    record = Dataset.from_json(json.loads(raw))
    assert (record.PatientID, str(record.PatientName)) == ("P1", "ADT^NAME")


def test_both_arrival_orders_end_in_the_same_state(redis_client: redis.Redis) -> None:
    first_store, first = patient_store(redis_client, "adt-first")
    update(first, "P1", PatientName="ADT^NAME", PatientSex="M")
    order(first, "P1", "A1")
    then_store, then = patient_store(redis_client, "order-first")
    order(then, "P1", "A1")
    update(then, "P1", PatientName="ADT^NAME", PatientSex="M")
    assert state(first_store) == state(then_store)
    assert str(by_acc(first_store)["A1"].PatientName) == "ADT^NAME"


def test_merge_moves_entries_and_index_sets(store: WorklistStore) -> None:
    patients = PatientStore(store)
    order(patients, "OLD", "A1")
    order(patients, "OLD", "A2")
    order(patients, "NEW", "B1")
    update(patients, "OLD", PatientName="OLD^RECORD")
    merge(patients, "OLD", "NEW", PatientName="SURVIVING^NAME")
    assert accs(store, "NEW") == {"A1", "A2", "B1"}
    assert accs(store, "OLD") == set()
    client, keys = store.client, store.keys
    assert client.exists(keys.by_patient("OLD")) == 0
    assert client.exists(keys.patient("OLD")) == 0
    assert client.get(keys.patient_alias("OLD")) == b"NEW"
    for acc, ds in by_acc(store).items():
        assert (ds.PatientID, str(ds.PatientName)) == ("NEW", "SURVIVING^NAME"), acc
    # each entry's own index list follows, so a later cancel cleans the right set
    store.apply([OrderChange("PLACER:A1", OrderAction.CANCEL)], None)
    assert accs(store, "NEW") == {"A2", "B1"}
    assert store.count() == 2


def test_order_with_the_old_id_goes_to_the_survivor(store: WorklistStore) -> None:
    patients = PatientStore(store)
    update(patients, "NEW", PatientName="SURVIVING^NAME")
    merge(patients, "UNKNOWN-OLD", "NEW")  # nothing to move: accepted, alias recorded
    assert store.client.get(store.keys.patient_alias("UNKNOWN-OLD")) == b"NEW"
    order(patients, "UNKNOWN-OLD", "A1")
    ds = by_acc(store)["A1"]
    assert (ds.PatientID, str(ds.PatientName)) == ("NEW", "SURVIVING^NAME")
    assert accs(store, "NEW") == {"A1"} and accs(store, "UNKNOWN-OLD") == set()


def test_merge_both_arrival_orders_end_equal(redis_client: redis.Redis) -> None:
    first_store, first = patient_store(redis_client, "merge-first")
    merge(first, "OLD", "NEW", PatientName="SURVIVING^NAME")
    order(first, "OLD", "A1")
    then_store, then = patient_store(redis_client, "order-first")
    order(then, "OLD", "A1")
    merge(then, "OLD", "NEW", PatientName="SURVIVING^NAME")
    assert state(first_store) == state(then_store)
    assert by_acc(then_store)["A1"].PatientID == "NEW"


def test_several_pairs_and_chains_in_one_message(store: WorklistStore) -> None:
    patients = PatientStore(store)
    order(patients, "A", "X1")
    order(patients, "B", "X2")
    adt(
        patients,
        PatientAction.MERGE,
        PatientChange("B", attrs("B"), "A"),
        PatientChange("C", attrs("C", PatientName="C^C"), "B"),
    )
    assert accs(store, "C") == {"X1", "X2"}
    assert accs(store, "A") == accs(store, "B") == set()
    order(patients, "A", "X3")  # A → B → C
    assert by_acc(store)["X3"].PatientID == "C"
    # a merge back into A makes A live again: its alias goes
    merge(patients, "C", "A")
    assert store.client.exists(store.keys.patient_alias("A")) == 0
    assert accs(store, "A") == {"X1", "X2", "X3"}


def test_change_id_carries_the_prior_record(store: WorklistStore) -> None:
    patients = PatientStore(store)
    order(patients, "OLD", "A1")
    update(patients, "OLD", PatientName="SAME^PERSON", PatientBirthDate="19800102")
    adt(patients, PatientAction.CHANGE_ID, PatientChange("NEW", attrs("NEW"), "OLD"))
    order(patients, "NEW", "A2")
    for ds in by_acc(store).values():
        assert (ds.PatientID, str(ds.PatientName), ds.PatientBirthDate) == (
            "NEW",
            "SAME^PERSON",
            "19800102",
        )


def test_arrived_marks_scheduled_steps_of_the_patient(store: WorklistStore) -> None:
    patients = PatientStore(store)
    order(patients, "P1", "A1")
    order(patients, "P2", "B1")
    assert adt(patients, PatientAction.ARRIVED, PatientChange("P1", attrs("P1"))) == 1
    entries = by_acc(store)
    assert entries["A1"].ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "ARRIVED"
    assert entries["B1"].ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == (
        "SCHEDULED"
    )
    assert adt(patients, PatientAction.ARRIVED, PatientChange("P1", attrs("P1"))) == 0


def test_dedup_record_commits_with_the_effect(store: WorklistStore) -> None:
    patients = PatientStore(store)
    order(patients, "P1", "A1")
    update_once = PatientResult(
        PatientAction.UPDATE, (PatientChange("P1", attrs("P1", PatientSex="F")),), "adt", "v1"
    )
    key = DedupKey("HIS", "HOSP", "MSG-1")
    first = patients.apply(update_once, (key, DedupRecord("d1", b"first ack")))
    assert first.duplicate is None and first.updated == 1
    again = patients.apply(update_once, (key, DedupRecord("d1", b"second ack")))
    assert again.duplicate == DedupRecord("d1", b"first ack")
    ignored = PatientResult(PatientAction.IGNORE, (), "adt", "v1")
    outcome = patients.apply(ignored, (DedupKey("HIS", "HOSP", "MSG-2"), DedupRecord("d2", b"a")))
    assert (outcome.updated, outcome.moved, outcome.duplicate) == (0, 0, None)
    assert store.dedup_lookup(DedupKey("HIS", "HOSP", "MSG-2")) == DedupRecord("d2", b"a")


def test_a_failed_guard_changes_nothing(store: WorklistStore) -> None:
    stale = Guard(GuardKind.GET, store.keys.patient_alias("P1"), "0" * 40)
    change = OrderChange("PLACER:A1", OrderAction.SCHEDULE, (entry("P1", "A1"),))
    key = DedupKey("RIS", "HOSP", "M1")
    outcome = store.apply([change], (key, DedupRecord("d", b"ack")), [stale])
    assert outcome.conflict
    assert store.count() == 0 and store.dedup_lookup(key) is None


def test_read_order_reads_the_dedup_record_with_the_patients(store: WorklistStore) -> None:
    patients = PatientStore(store)
    adt(patients, PatientAction.UPDATE, PatientChange("P1", attrs("P1", PatientSex="F")))
    change = OrderChange("PLACER:A1", OrderAction.SCHEDULE, (entry("P1", "A1"),))
    key = DedupKey("RIS", "HOSP", "M1")
    read = patients.read_order([change], key)
    assert read.previous is None
    outcome = patients.apply_order([change], (key, DedupRecord("d", b"ack")), None, read)
    assert outcome.created == 1 and outcome.duplicate is None
    (stored,) = store.candidates(CandidateCriteria(patient_id="P1"))
    assert stored.PatientSex == "F"  # the record read with the dedup lookup was overlaid
    assert patients.read_order([change], key).previous == DedupRecord("d", b"ack")
    cancel = OrderChange("PLACER:A1", OrderAction.CANCEL, ())  # no entries, no patients
    assert patients.read_order([cancel], key).previous == DedupRecord("d", b"ack")
    assert patients.read_order([cancel], DedupKey("RIS", "HOSP", "M2")).previous is None
    again = patients.apply_order([change], (key, DedupRecord("d", b"x")), None, read)
    assert again.duplicate == DedupRecord("d", b"ack")  # the script still re-checks


def test_aliases_stay_one_hop_and_keep_their_own_life(redis_client: redis.Redis) -> None:
    store = WorklistStore(redis_client, keys=keys_for("mwl"), alias_ttl_seconds=1000)
    patients, client, keys = PatientStore(store), redis_client, store.keys
    order(patients, "A", "X1")
    merge(patients, "A", "B")
    assert 990 <= client.ttl(keys.patient_alias("A")) <= 1000
    client.expire(keys.patient_alias("A"), 500)  # as if that merge were older
    merge(patients, "B", "C")
    assert client.get(keys.patient_alias("A")) == b"C"  # pointed at C itself, not via B
    assert client.get(keys.patient_alias("B")) == b"C"
    assert client.ttl(keys.patient_alias("A")) <= 500  # moved, not renewed
    assert client.ttl(keys.patient_alias("B")) > 500
    assert client.smembers(keys.merged_into("C")) == {b"A", b"B"}
    assert client.exists(keys.merged_into("B")) == 0
    assert 0 < client.ttl(keys.merged_into("C")) <= 1000
    order(patients, "A", "X2")
    assert accs(store, "C") == {"X1", "X2"}


def test_an_expired_alias_leaves_a_plain_patient_id(store: WorklistStore) -> None:
    patients, client, keys = PatientStore(store), store.client, store.keys
    merge(patients, "OLD", "NEW", PatientName="SURVIVING^NAME")
    client.pexpire(keys.patient_alias("OLD"), 1)
    while client.exists(keys.patient_alias("OLD")):  # Redis expires it: the alias's end
        pass
    order(patients, "OLD", "A1", name="OLD^ORDER")
    ds = by_acc(store)["A1"]
    assert (ds.PatientID, str(ds.PatientName)) == ("OLD", "OLD^ORDER")
    assert accs(store, "OLD") == {"A1"} and accs(store, "NEW") == set()


def test_a_patient_carries_a_bounded_number_of_merged_ids(store: WorklistStore) -> None:
    patients, client, keys = PatientStore(store), store.client, store.keys
    for n in range(MAX_MERGED_IDS):
        merge(patients, f"OLD-{n}", "P")
    assert client.scard(keys.merged_into("P")) == MAX_MERGED_IDS
    with pytest.raises(MappingError) as refused:
        merge(patients, "ONE-TOO-MANY", "P")
    assert refused.value.location == "MRG-1" and "ONE-TOO-MANY" not in refused.value.text
    assert client.exists(keys.patient_alias("ONE-TOO-MANY")) == 0  # nothing changed
    client.delete(keys.patient_alias("OLD-0"))  # an alias gone (expired) frees its place
    merge(patients, "ONE-TOO-MANY", "P")
    assert client.get(keys.patient_alias("ONE-TOO-MANY")) == b"P"
    assert client.scard(keys.merged_into("P")) == MAX_MERGED_IDS
