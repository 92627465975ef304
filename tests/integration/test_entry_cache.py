"""The store's cache of decoded entries, on a real redis-server: never stale, bounded,
shared only for reading (C-FIND answers over real associations leave it untouched)."""

from __future__ import annotations

import redis
from pydicom.dataset import Dataset

from broker.app import build_store
from broker.dicom.find import WorklistFindService
from broker.dicom.profiles import ProfileSet
from broker.settings import load_settings
from broker.store.entry_cache import EntryCache, decode_entry
from broker.store.mpps import MppsStore
from broker.store.worklist import WorklistStore
from broker.worklist.model import CandidateCriteria, OrderAction, OrderChange
from broker.worklist.mpps import StepRef
from tests.conftest import KEYS
from tests.integration.dicom_find_helpers import entry, put, query, start_server
from tests.integration.test_scanner_profiles import ask

STUDY = "1.2.826.0.1.3680043.10.1234.7"


def read(store: WorklistStore, acc: str) -> Dataset:
    """The one entry of order ``O-<acc>`` as the store returns it now."""
    (entry_id,) = store.order_entry_ids(f"O-{acc}")
    (ds,) = store.entries([entry_id])
    return ds


def sps_status(ds: Dataset) -> str:
    return str(ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus)


def test_an_unchanged_entry_is_decoded_once(store: WorklistStore) -> None:
    put(store, entry("A1", "CT1", "20261201"))
    first = read(store, "A1")
    assert read(store, "A1") is first
    (by_query,) = store.candidates(CandidateCriteria(station_aet="CT1"))
    assert by_query is first


def test_an_updated_order_is_read_in_its_new_version(store: WorklistStore) -> None:
    put(store, entry("A1", "CT1", "20261201", name="DOE^JOHN"))
    old = read(store, "A1")
    put(store, entry("A1", "CT1", "20261201", name="ROE^JANE"))
    new = read(store, "A1")
    assert str(new.PatientName) == "ROE^JANE"
    assert str(old.PatientName) == "DOE^JOHN"  # the old version was replaced, not changed
    assert read(store, "A1") is new


def test_a_status_change_from_the_ris_is_read(store: WorklistStore) -> None:
    put(store, entry("A1", "CT1", "20261201"))
    before = read(store, "A1")
    assert sps_status(before) == "SCHEDULED"
    store.apply([OrderChange("O-A1", OrderAction.SET_STATUS, status="ARRIVED")], None)
    assert sps_status(read(store, "A1")) == "ARRIVED"
    assert sps_status(before) == "SCHEDULED"


def test_a_status_change_by_mpps_is_read(store: WorklistStore) -> None:
    scheduled = entry("A1", "CT1", "20261201")
    scheduled.StudyInstanceUID = STUDY
    put(store, scheduled)
    assert sps_status(read(store, "A1")) == "SCHEDULED"
    step = StepRef(study_uid=STUDY, accession="A1", sps_id="SPS-A1")
    _, linked, changed = MppsStore(store, events_max=10).create(
        "1.2.3.4", Dataset(), [step], patient_id="P-A1", aet="CT1"
    )
    assert (len(linked), changed) == (1, 1)
    assert sps_status(read(store, "A1")) == "STARTED"


def test_a_removed_entry_is_not_returned(store: WorklistStore) -> None:
    put(store, entry("A1", "CT1", "20261201"), entry("A2", "CT1", "20261201"))
    (entry_id,) = store.order_entry_ids("O-A1")
    assert len(list(store.candidates(CandidateCriteria(station_aet="CT1")))) == 2
    store.apply([OrderChange("O-A1", OrderAction.CANCEL)], None)
    assert list(store.entries([entry_id])) == []
    assert [ds.AccessionNumber for ds in store.candidates(CandidateCriteria())] == ["A2"]
    assert len(store.entry_cache) == 1


def test_the_bound_holds_and_the_least_recently_read_goes_first(
    redis_client: redis.Redis,
) -> None:
    store = WorklistStore(redis_client, keys=KEYS, entry_cache=3)
    put(store, *(entry(f"A{i}", "CT1", "20261201") for i in range(6)))
    assert len(list(store.candidates(CandidateCriteria()))) == 6
    assert len(store.entry_cache) == 3
    recent = [read(store, f"A{i}") for i in (3, 4, 5)]
    kept = read(store, "A3")
    assert kept is recent[0]
    read(store, "A0")  # evicts A4, read longest ago
    assert read(store, "A3") is kept
    assert read(store, "A4") is not recent[1]
    assert len(store.entry_cache) == 3


def test_a_reader_may_use_the_cache_without_filling_it(store: WorklistStore) -> None:
    put(store, entry("A1", "CT1", "20261201"), entry("A2", "CT1", "20261201"))
    ids = store.candidate_ids(CandidateCriteria(station_aet="CT1"))
    assert sorted(ds.AccessionNumber for ds in store.entries(ids, keep=False)) == ["A1", "A2"]
    assert len(store.entry_cache) == 0
    first = read(store, "A1")  # kept
    (again,) = store.entries(store.order_entry_ids("O-A1"), keep=False)
    assert again is first  # what is held is still read


def test_a_broad_query_does_not_fill_the_caches(redis_client: redis.Redis) -> None:
    store = WorklistStore(redis_client, keys=KEYS, entry_cache=8)
    put(store, *(entry(f"A{i}", "CT1", "20261201") for i in range(3)))
    put(store, entry("B1", "MR1", "20261201"))
    server = start_server(WorklistFindService(store, max_answers=100, answer_cache=8))
    try:
        broad, _ = ask(server, "ANY", query(ScheduledStationAETitle="CT1"))  # 3 > 8 / 4
        assert sorted(a.AccessionNumber for a in broad) == ["A0", "A1", "A2"]
        assert len(store.entry_cache) == 0
        narrow, _ = ask(server, "ANY", query(ScheduledStationAETitle="MR1"))
        assert [a.AccessionNumber for a in narrow] == ["B1"]
        assert len(store.entry_cache) == 1
    finally:
        server.stop()


def test_the_setting_sizes_the_brokers_cache(redis_client: redis.Redis) -> None:
    settings = load_settings(environ={"MWL_BROKER_DICOM_ENTRY_CACHE": "2"})
    store = build_store(settings, redis_client)
    put(store, *(entry(f"A{i}", "CT1", "20261201") for i in range(3)))
    assert len(list(store.candidates(CandidateCriteria()))) == 3
    assert len(store.entry_cache) == 2


def test_cache_off_reads_every_version(redis_client: redis.Redis) -> None:
    store = WorklistStore(redis_client, keys=KEYS, entry_cache=0)
    put(store, entry("A1", "CT1", "20261201"))
    first = read(store, "A1")
    assert read(store, "A1") is not first
    assert read(store, "A1").AccessionNumber == "A1"
    store.apply([OrderChange("O-A1", OrderAction.SET_STATUS, status="STARTED")], None)
    assert sps_status(read(store, "A1")) == "STARTED"
    assert len(store.entry_cache) == 0


def test_a_negative_size_is_refused() -> None:
    try:
        EntryCache(-1)
    except ValueError as e:
        assert "0 (off)" in str(e)
    else:
        raise AssertionError("EntryCache(-1) was accepted")


def test_decode_overlays_the_status_on_the_one_step() -> None:
    raw = b'{"00400100": {"vr": "SQ", "Value": [{"00400001": {"vr": "AE", "Value": ["CT1"]}}]}}'
    ds = decode_entry(raw, b"STARTED")
    assert sps_status(ds) == "STARTED"
    plain = decode_entry(raw, None).ScheduledProcedureStepSequence[0]
    assert "ScheduledProcedureStepStatus" not in plain


def test_a_repeated_poll_sees_every_change(store: WorklistStore) -> None:
    """Over a real association, with the entry and answer caches on (their defaults)."""
    put(store, entry("A1", "CT1", "20261201"), entry("A2", "CT1", "20261201"))
    poll = query(ScheduledStationAETitle="CT1", ScheduledProcedureStepStatus="")

    def answered() -> list[tuple[str, str, str]]:
        answers, final = ask(server, "CT1", poll)
        assert final.Status == 0x0000
        return sorted((a.AccessionNumber, str(a.PatientName), sps_status(a)) for a in answers)

    server = start_server(WorklistFindService(store, max_answers=100))
    try:
        assert answered() == [("A1", "DOE^JOHN", "SCHEDULED"), ("A2", "DOE^JOHN", "SCHEDULED")]
        assert answered() == [("A1", "DOE^JOHN", "SCHEDULED"), ("A2", "DOE^JOHN", "SCHEDULED")]
        store.apply([OrderChange("O-A1", OrderAction.SET_STATUS, status="ARRIVED")], None)
        put(store, entry("A2", "CT1", "20261201", name="ROE^JANE"))
        assert answered() == [("A1", "DOE^JOHN", "ARRIVED"), ("A2", "ROE^JANE", "SCHEDULED")]
        store.apply([OrderChange("O-A1", OrderAction.CANCEL)], None)
        assert answered() == [("A2", "ROE^JANE", "SCHEDULED")]
    finally:
        server.stop()


def snapshot(ds: Dataset) -> list[tuple[str, str, str, object]]:
    """Every element of ``ds`` (sequences flattened): its value's type and text, and for a
    name the bytes pydicom keeps once it has encoded it."""
    return [
        (str(e.tag), type(e.value).__name__, repr(e.value), getattr(e.value, "original_string", 0))
        for e in ds.iterall()
    ]


def test_answering_queries_never_changes_a_cached_entry(store: WorklistStore) -> None:
    """Return keys of every shape, three character-set policies, sorted and unsorted."""
    put(
        store,
        entry("A1", "CT1", "20261201", name="Müller^Zoë"),
        entry("A2", "CT1", "20261201", name="Łódź^Ådne"),
    )
    cached = {acc: read(store, acc) for acc in ("A1", "A2")}
    before = {acc: (snapshot(ds), ds.to_json_dict()) for acc, ds in cached.items()}
    profiles = ProfileSet.parse(
        {
            "LATIN": {"character_set": "ISO_IR 100", "addresses": ["any"]},
            "LATIN_T": {
                "character_set": "ISO_IR 100",
                "unrepresentable": "transliterate",
                "addresses": ["any"],
            },
            "LATIN_R": {
                "character_set": "ISO_IR 100",
                "unrepresentable": "replace",
                "addresses": ["any"],
            },
            "SORTED": {"sort": ["patient"], "max_answers": 5, "addresses": ["any"]},
        }
    )
    service = WorklistFindService(store, max_answers=100, profiles=profiles)
    whole_step = query()
    whole_step.ScheduledProcedureStepSequence = [Dataset()]  # the stored item, whole
    narrow = Dataset()
    narrow.PatientName = "M*"
    narrow.ScheduledProcedureStepSequence = [Dataset()]
    narrow.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus = ""
    names: dict[str, list[str]] = {}
    server = start_server(service)
    try:
        for calling in ("ANY", "LATIN", "LATIN_T", "LATIN_R", "SORTED", "ANY"):
            for identifier in (query(ScheduledStationAETitle="CT1"), whole_step, narrow):
                answers, final = ask(server, calling, identifier)
                assert final.Status == 0x0000
                names.setdefault(calling, []).extend(str(a.PatientName) for a in answers)
    finally:
        server.stop()
    assert {acc: read(store, acc) for acc in cached} == cached
    for acc, ds in cached.items():
        assert read(store, acc) is ds
        assert (snapshot(ds), ds.to_json_dict()) == before[acc]
    # each scanner got its own encoding, whichever asked first
    assert "Müller^Zoë" in names["ANY"] and "Łódź^Ådne" in names["ANY"]
    assert "Müller^Zoë" in names["LATIN"] and "Łódź^Ådne" in names["LATIN"]  # in UTF-8
    assert "Müller^Zoë" in names["LATIN_T"] and "Lódz^Ådne" in names["LATIN_T"]
    assert "?ód?^Ådne" in names["LATIN_R"]
    assert names["SORTED"][:2] == ["Müller^Zoë", "Łódź^Ådne"]
