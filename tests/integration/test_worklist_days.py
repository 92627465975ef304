"""A search that names no index key reads its candidates day by day from the SPS Start Date
index (``WorklistStore.candidate_days``) and stops once its page is certain; it answers
exactly what reading every candidate answers (a query that names the one station every
entry has takes that path), over one real Redis."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from broker.dicom.gate import BroadQueryGate
from broker.dicom.profiles import ProfileSet
from broker.dicom.qido import parse_query
from broker.dicom.scanner import ScannerProfile
from broker.errors import DicomServiceError
from broker.services.worklist import CONSOLE, SearchPage, WorklistService
from broker.store.worklist import WorklistStore
from broker.worklist.model import CandidateCriteria, OrderAction, OrderChange
from tests.conftest import KEYS

SPS = "ScheduledProcedureStepSequence"
DAYS = ("20260105", "20260106", "20260107", "20260110")
# no time; without a date, times that sort before and after every date
TIMES = (None, "080000", "0800", "213000")
NAMES = ("DOE^JOHN", "Doe^Jane", "SMITH^ANNA")
RANGES = ("20260105-20260106", "20260106-", "-20260107", "20260107")


def _step_element(keyword: str, value: str) -> DataElement:
    tag = tag_for_keyword(keyword)
    assert tag is not None
    return DataElement(tag, dictionary_VR(tag), value, validation_mode=config.IGNORE)


def entry(n: int, date: str | None, time: str | None, accession: str, name: str) -> Dataset:
    """Entry ``n``: station CT1 (every entry), the SPS start given (None: none)."""
    ds = Dataset()
    ds.PatientName = name
    ds.PatientID = f"P{n}"
    ds.AccessionNumber = accession
    step = Dataset()
    step.ScheduledStationAETitle = "CT1"
    step.Modality = "CT"
    for keyword, value in (
        ("ScheduledProcedureStepStartDate", date),
        ("ScheduledProcedureStepStartTime", time),
    ):
        if value is not None:
            step.add(_step_element(keyword, value))
    step.ScheduledProcedureStepID = f"S{n}"
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def put(store: WorklistStore, entries: list[Dataset]) -> None:
    changes = [OrderChange(f"O{n}", OrderAction.SCHEDULE, (e,)) for n, e in enumerate(entries)]
    store.apply(changes, None)


def service(store: WorklistStore, **options: Any) -> WorklistService:
    profiles = ProfileSet({})
    return WorklistService(
        store, profiles, max_answers=1000, hidden_statuses=frozenset(), **options
    )


def console(sort: tuple[str, ...] = ()) -> ScannerProfile:
    return ScannerProfile(CONSOLE, hidden_statuses=frozenset(), max_answers=1000, sort=sort)


def search(
    worklist: WorklistService, params: list[tuple[str, str]], sort: tuple[str, ...] = ()
) -> SearchPage:
    return worklist.search_as(console(sort), parse_query(params))


def read_whole(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The same query, naming the station every entry has: every candidate is read."""
    return [*params, (f"{SPS}.ScheduledStationAETitle", "CT1")]


ENTRY = st.tuples(
    st.sampled_from((None, *DAYS)),
    st.sampled_from(TIMES),
    st.sampled_from(("A1", "A2", "A3")),  # few: equal keys, told apart by id
    st.sampled_from(NAMES),
)
CRITERIA: st.SearchStrategy[list[tuple[str, str]]] = st.one_of(
    st.just([]),
    st.just([("PatientName", "DOE*")]),
    st.sampled_from(RANGES).map(lambda r: [(f"{SPS}.ScheduledProcedureStepStartDate", r)]),
)


def test_the_walk_answers_what_reading_every_candidate_answers(
    store: WorklistStore, redis_client: redis.Redis
) -> None:
    @settings(max_examples=80, derandomize=True, deadline=None, database=None)
    @given(
        st.lists(ENTRY, max_size=24),
        CRITERIA,
        st.integers(0, 12),
        st.integers(1, 8),
        st.integers(1, 5),
        st.sampled_from(((), ("start",), ("start", "patient"))),
    )
    def check(
        entries: list[tuple[str | None, str | None, str, str]],
        criteria: list[tuple[str, str]],
        offset: int,
        limit: int,
        chunk: int,
        sort: tuple[str, ...],
    ) -> None:
        redis_client.flushdb()
        put(store, [entry(n, *e) for n, e in enumerate(entries)])
        worklist = service(store, day_chunk=chunk)
        params = [*criteria, ("offset", str(offset)), ("limit", str(limit))]
        walked = search(worklist, params, sort)
        whole = search(worklist, read_whole(params), sort)
        assert (walked.ids, walked.more) == (whole.ids, whole.more)

    check()


def days_of(store: WorklistStore) -> dict[str, str]:
    """Each entry's id and its SPS Start Date as stored."""
    ids = store.candidate_ids(CandidateCriteria())
    return {
        i: str(e[SPS][0].get("ScheduledProcedureStepStartDate", ""))
        for i, e in store.entries_by_id(ids)
    }


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 2000])
def test_days_come_whole_and_in_order_across_chunks(store: WorklistStore, chunk: int) -> None:
    # days of 1, 3, 7 and 8 entries: a day larger than a chunk, chunks ending mid-day
    sizes = {"20260103": 1, "20260104": 8, "20260105": 3, "20261231": 7}
    dated = [d for d, size in sizes.items() for _ in range(size)]
    put(store, [entry(n, d, None, f"A{n}", "DOE^JOHN") for n, d in enumerate(dated)])
    stored = days_of(store)
    expected = [(int(d), sorted(i for i, day in stored.items() if day == d)) for d in sizes]
    assert list(store.candidate_days(CandidateCriteria(), chunk)) == expected
    ranged = CandidateCriteria(date_from="20260104", date_to="20260105")
    assert list(store.candidate_days(ranged, chunk)) == expected[1:3]
    assert store.candidate_count(ranged) == 11
    assert store.candidate_count(CandidateCriteria()) == len(dated)


def test_undated_entries_come_first_and_not_under_a_date_range(store: WorklistStore) -> None:
    dates = [None, "20260105", None, "20260105", None, "20260106"]
    put(store, [entry(n, d, "0800", f"A{n}", "DOE^JOHN") for n, d in enumerate(dates)])
    stored = days_of(store)
    undated = sorted(i for i, day in stored.items() if day == "")
    days = list(store.candidate_days(CandidateCriteria(), 2))
    assert [day for day, _ in days] == [0, 20260105, 20260106]
    assert days[0] == (0, undated)
    assert sum(len(ids) for _, ids in days) == len(dates)
    ranged = CandidateCriteria(date_from="20260101")
    assert [day for day, _ in store.candidate_days(ranged, 2)] == [20260105, 20260106]


def test_criteria_naming_an_index_set_are_not_read_by_day(store: WorklistStore) -> None:
    with pytest.raises(ValueError, match="index set"):
        list(store.candidate_days(CandidateCriteria(station_aet="CT1")))
    with pytest.raises(ValueError, match="index set"):
        store.candidate_count(CandidateCriteria(patient_id="P1"))
    assert store.names_index_set(CandidateCriteria(modality="CT"))
    assert not store.names_index_set(CandidateCriteria(date_from="20260101"))


def test_a_walk_stops_after_the_day_that_makes_its_page_certain(store: WorklistStore) -> None:
    # 10 days of 5 entries; a page of 3 is certain after the first day: 5 entries examined,
    # within a budget of 10 that reading all 50 candidates is refused at
    days = [f"202601{d:02d}" for d in range(10, 20)]
    put(store, [entry(n, days[n // 5], "0800", f"A{n}", "DOE^JOHN") for n in range(50)])
    worklist = service(store, max_candidates=10, day_chunk=3)
    page = search(worklist, [("limit", "3")])
    assert len(page.answers) == 3 and page.more
    assert {a.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate
            for a in page.answers} == {days[0]}  # fmt: skip
    with pytest.raises(DicomServiceError, match="candidate entries"):
        search(worklist, read_whole([("limit", "3")]))


def test_a_broad_walk_leaves_the_entry_cache_alone(redis_client: redis.Redis) -> None:
    store = WorklistStore(redis_client, keys=KEYS, entry_cache=11)
    put(store, [entry(n, DAYS[n % 4], "0800", f"A{n}", "DOE^JOHN") for n in range(12)])
    broad = service(store, gate=BroadQueryGate(threshold=11, slots=1, wait=0))
    assert len(search(broad, []).answers) == 12
    assert len(store.entry_cache) == 0  # 12 would not fit: the polls' would be pushed out
    narrow = service(store, gate=BroadQueryGate(threshold=12, slots=1, wait=0))
    assert len(search(narrow, []).answers) == 12
    assert len(store.entry_cache) == 11


def test_a_broad_search_fills_the_entry_cache_while_the_worklist_fits(
    redis_client: redis.Redis,
) -> None:
    store = WorklistStore(redis_client, keys=KEYS, entry_cache=12)
    put(store, [entry(n, DAYS[n % 4], "0800", f"A{n}", "DOE^JOHN") for n in range(12)])
    broad = service(store, gate=BroadQueryGate(threshold=5, slots=1, wait=0))
    assert len(search(broad, [("limit", "20")]).answers) == 12
    assert len(store.entry_cache) == 12
